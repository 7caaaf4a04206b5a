"""One import namespace: everything installs under ``reasoner``, nothing beside other distributions.

The repository keeps its top-level folders (reasoner/, verifiers/, sandbox/, tasks/); the
distribution maps them to reasoner.verifiers, reasoner.sandbox and reasoner.tasks. A bare
``import verifiers`` would load PyPI's ``verifiers`` (another project) or nothing at all.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BARE = ("verifiers", "sandbox", "tasks")


def _python_files() -> list[Path]:
    files = []
    for folder in ("reasoner", "verifiers", "sandbox", "tasks", "tests", "bench"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def _bare_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] in BARE]
    return found


def test_no_module_imports_a_bare_verifiers_sandbox_or_tasks():
    files = _python_files()
    assert len(files) > 50
    bad = {str(f.relative_to(ROOT)): hits for f in files if (hits := _bare_imports(f.read_text(encoding="utf-8")))}
    assert not bad, f"use the reasoner. namespace: {bad}"


def test_code_in_strings_and_docs_uses_the_namespace_too():
    """Plugin examples in the docs and code generated as strings (tests' plugins, the sandbox's
    bootstrap) are copied by users: they must import the namespaced form as well."""
    pattern = re.compile(r"^\s*(from|import) (verifiers|sandbox|tasks)\b", re.M)
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *_python_files()]
    bad = [f"{t.relative_to(ROOT)}: {m.group(0).strip()}" for t in texts
           for m in pattern.finditer(t.read_text(encoding="utf-8"))]
    assert not bad, bad


def test_the_wheel_installs_one_top_level_package(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith("reasoner_rl-")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"reasoner"}
    for module in ("reasoner/verifiers/math_answer/parser.py", "reasoner/sandbox/inside/runner.py",
                   "reasoner/tasks/arithmetic.py", "reasoner/commands/train.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[reasoner.verifiers]" in text and "math = reasoner.verifiers.math_answer:MathVerifier" in text
    assert "reasoner = reasoner.cli:main" in text


def test_the_subpackages_import_from_anywhere(tmp_path):
    """Outside the repository (no folder of ours on sys.path), the namespaced names import and the bare ones do not."""
    code = ("import importlib.util, reasoner.verifiers, reasoner.sandbox, reasoner.tasks\n"
            "print([importlib.util.find_spec(n) is None for n in ('verifiers', 'sandbox', 'tasks')])\n"
            "print(reasoner.verifiers.__name__, reasoner.sandbox.__name__, reasoner.tasks.__name__)\n")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[True, True, True]"
    assert lines[1] == "reasoner.verifiers reasoner.sandbox reasoner.tasks"
