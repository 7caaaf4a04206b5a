"""Code datasets people train on, mapped onto the code verifier's reference (docs/verifiers.md, ``## code``).

=================  ===================================  ==========================================
task               Hugging Face dataset (``NAME:hf``)   tests
=================  ===================================  ==========================================
``mbpp``           google-research-datasets/mbpp        ``test_list`` asserts (+ setup code)
``apps``           codeparrot/apps                      ``input_output``: stdin/stdout or ``fn_name`` calls
``taco``           BAAI/TACO                            as APPS
``codecontests``   deepmind/code_contests               public + private (+ ``generated=1``) stdin/stdout
``livecodebench``  livecodebench/code_generation_lite   public + private: stdin or ``Solution().f`` calls
``kodcode``        KodCode/KodCode-V1                   the pytest ``test`` code
=================  ===================================  ==========================================

``NAME:PATH`` reads a local ``.jsonl`` (``.jsonl.gz``), ``.json`` (a list of rows) or
``.parquet`` file with the dataset's own columns (JSON-encoded columns as strings or already
decoded); ``NAME:hf`` or ``NAME:hf:OWNER/NAME`` loads the Hugging Face dataset (needs
``datasets`` and the network); ``NAME:path=PATH,limit=N,max_tests=N`` takes options
(``generated=1`` for CodeContests). A row that cannot be mapped (no tests, undecodable tests)
is skipped with one warning naming the first such row, or is an error naming it with ``strict``.

LiveCodeBench stores private tests as base64(zlib(pickle(JSON string))). They are decoded
here **without unpickling**: the pickle's opcodes are read with ``pickletools`` (which runs
nothing) and only a stream holding one string and nothing else is accepted; anything else is
refused with a clear error.
"""

from __future__ import annotations

import ast
import base64
import json
import pickletools
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from reasoner.tasks import Example, Task, TaskError, parse_options, sources
from reasoner.tasks.jsonl import from_rows, read_rows

FUNCTION = ("Write the solution in Python. Reply with the complete code, including the imports it needs, "
            "in one ```python code block.")
STDIO = ("Write a Python program that reads the input from standard input and writes the answer to standard "
         "output. Reply with the complete program in one ```python code block.")
MAX_DECODED = 1 << 28  # bytes a compressed test payload may expand to
HF = {"mbpp": ("google-research-datasets/mbpp", "full"), "apps": ("codeparrot/apps", None),
      "taco": ("BAAI/TACO", None), "codecontests": ("deepmind/code_contests", None),
      "livecodebench": ("livecodebench/code_generation_lite", None), "kodcode": ("KodCode/KodCode-V1", None)}
HF_SPLITS = {"livecodebench": "test", "kodcode": "train"}
# What LeetCode's (and LiveCodeBench's) harness imports before a Solution class: starter code
# uses List[int], and solutions use deque, heapq, lru_cache ... without importing them.
LEETCODE_PREFIX = ("from typing import *\nfrom collections import *\nfrom heapq import *\nfrom bisect import *\n"
                   "from itertools import *\nfrom functools import *\nimport math\n")
OPTIONS = ("path", "hf", "limit", "max_tests", "generated")


# ---- reading rows -------------------------------------------------------------------------------

def read_file(path: Path, strict: bool) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` of a JSONL, JSON (a list) or Parquet file."""
    if not path.is_file():
        raise TaskError(f"data file not found: {path}")
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TaskError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        return enumerate(pq.read_table(path).to_pylist(), 1)
    if name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TaskError(f"{path}: not a JSON file ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise TaskError(f"{path}: a .json data file holds a list of rows")
        return enumerate(data, 1)
    return read_rows(path, strict)


def rows_of(name: str, arg: str | None, split: str, strict: bool) -> tuple[Iterator, str, dict, bool]:
    """The rows, where they came from, the options, and whether they are one file (no split)."""
    options = parse_options(arg) if arg and "=" in arg else {}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TaskError(f"{name}: unknown option {unknown[0]!r} (known: {', '.join(OPTIONS)})")
    source = options.get("path") or (None if options else arg)
    if options.get("hf"):
        source = f"hf:{options['hf']}" if options["hf"] not in ("1", "true") else "hf"
    if not source:
        source = "hf"
    if source == "hf" or source.startswith("hf:"):
        dataset_id, config = HF[name]
        if source.startswith("hf:"):
            dataset_id, config = source[3:], None
        hf_split = "valid" if name == "codecontests" and split == "validation" else split
        if name in HF_SPLITS:  # datasets with one split serve it whatever is asked
            hf_split = HF_SPLITS[name]
        return sources.read_hf(dataset_id, hf_split, config), f"hf:{dataset_id}", options, False
    path = Path(source).expanduser()
    return read_file(path, strict), str(path), options, True


def _int_option(options: dict, key: str) -> int | None:
    if key not in options:
        return None
    try:
        value = int(options[key])
    except ValueError:
        raise TaskError(f"option {key} must be an integer, not {options[key]!r}") from None
    if value < 1:
        raise TaskError(f"option {key} must be at least 1")
    return value


def _limited(rows: Iterator, limit: int | None) -> Iterator:
    for n, item in enumerate(rows):
        if limit is not None and n >= limit:
            return
        yield item


def build(name: str, arg: str | None, split: str, strict: bool,
          convert: Callable[[int, dict, dict], Example]) -> Task:
    rows, where, options, one_file = rows_of(name, arg, split, strict)
    _int_option(options, "max_tests")

    def checked(lineno: int, row: Any) -> Example:
        if not isinstance(row, dict):
            raise TaskError("the row is not an object")
        return convert(lineno, row, options)
    return from_rows(name, _limited(rows, _int_option(options, "limit")), where, checked, strict,
                     split=None if one_file else split)


# ---- shared conversions ----------------------------------------------------------------------------

def json_field(row: dict, key: str, default=None):
    """A column that datasets store as a JSON string (or, in a converted file, already decoded)."""
    value = row.get(key, default)
    if isinstance(value, str):
        if not value.strip():
            return default
        try:
            return json.loads(value)
        except ValueError as exc:
            raise TaskError(f"{key!r} is not valid JSON ({exc})") from None
    return value


def text(row: dict, *keys: str) -> str:
    value = sources.field(row, *keys)
    if not isinstance(value, str):
        raise TaskError(f"{keys[0]!r} must be a string")
    return value.strip()


def _lines(value) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if not isinstance(value, str):
        raise TaskError(f"a stdin/stdout test holds a {type(value).__name__}, not text")
    return value


def _cap(items: list, options: dict) -> list:
    cap = _int_option(options, "max_tests")
    return items[:cap] if cap else items


def _prompt(question: str, starter: str | None, stdio: bool) -> str:
    parts = [question.strip()]
    if starter and starter.strip():
        parts.append(f"Start from this code:\n```python\n{starter.rstrip()}\n```")
    parts.append(STDIO if stdio else FUNCTION)
    return "\n\n".join(parts)


def input_output_reference(io: Any, starter: str | None, options: dict) -> dict:
    """APPS/TACO ``input_output`` (``{"inputs", "outputs", "fn_name"?}``) as a reference."""
    if not isinstance(io, dict) or not isinstance(io.get("inputs"), list) or not isinstance(io.get("outputs"), list):
        raise TaskError("'input_output' has no 'inputs' and 'outputs' lists")
    if not io["inputs"] or len(io["inputs"]) != len(io["outputs"]):
        raise TaskError(f"'input_output' has {len(io['inputs'])} inputs and {len(io['outputs'])} outputs")
    pairs = _cap(list(zip(io["inputs"], io["outputs"])), options)
    fn = io.get("fn_name")
    if fn:
        if not isinstance(fn, str) or not fn.isidentifier():
            raise TaskError(f"'fn_name' {fn!r} is not a function name")
        reference = {"fn_name": fn, "inputs": [a if isinstance(a, list) else [a] for a, _ in pairs],
                     "outputs": [o for _, o in pairs], "unwrap_outputs": True}
        if starter and "class Solution" in starter:
            reference.update(class_name="Solution", prefix=LEETCODE_PREFIX)
        return reference
    return {"cases": [{"input": _lines(i), "output": _lines(o)} for i, o in pairs]}


def _example(name: str, key: Any, prompt: str, reference: dict, meta: dict) -> Example:
    # A row the code verifier would call bad_reference is a data error now, naming the row.
    if "fn_name" in reference:
        if not reference["inputs"] or len(reference["inputs"]) != len(reference["outputs"]):
            raise TaskError("its call tests need as many outputs as inputs, at least one")
        try:
            json.dumps([reference["inputs"], reference["outputs"]], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TaskError(f"its call tests are not JSON data ({exc})") from None
    elif "cases" in reference and not reference["cases"]:
        raise TaskError("no test cases")
    elif "tests" in reference and not reference["tests"].strip() or "pytest" in reference and not reference["pytest"]:
        raise TaskError("no tests")
    return Example(id=f"{name}-{key}", prompt=prompt, reference=reference, verifier="code", meta=meta)


# ---- the datasets --------------------------------------------------------------------------------

def _mbpp(lineno: int, row: dict, options: dict) -> Example:
    question = text(row, "text", "prompt")
    tests = row.get("test_list")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise TaskError("'test_list' must be a non-empty list of assert lines")
    setup = [row.get("test_setup_code") or "", *(row.get("test_imports") or [])]
    prompt = (f"{question}\nYour code should pass tests like this one:\n```python\n{tests[0]}\n```\n\n{FUNCTION}")
    reference = {"tests": "\n".join([*(s for s in setup if s.strip()), *_cap(tests, options)])}
    return _example("mbpp", row.get("task_id", lineno), prompt, reference, {"solution": row.get("code")})


def _apps_like(name: str) -> Callable[[int, dict, dict], Example]:
    def convert(lineno: int, row: dict, options: dict) -> Example:
        question = text(row, "question")
        starter = row.get("starter_code") or ""
        reference = input_output_reference(json_field(row, "input_output"), starter, options)
        solutions = json_field(row, "solutions", []) or []
        key = row.get("problem_id", row.get("id", lineno))
        return _example(name, key, _prompt(question, starter, "cases" in reference), reference,
                        {"difficulty": row.get("difficulty"), "solution": solutions[0] if solutions else None,
                         "url": row.get("url")})
    return convert


PYTHON3 = 3  # deepmind/code_contests' Language enum: 1 PYTHON (2), 2 CPP, 3 PYTHON3, 4 JAVA


def _codecontests(lineno: int, row: dict, options: dict) -> Example:
    question = text(row, "description")
    kinds = ["public_tests", "private_tests"] + (["generated_tests"] if options.get("generated") == "1" else [])
    cases = []
    for kind in kinds:
        tests = json_field(row, kind, {}) or {}
        inputs, outputs = tests.get("input") or [], tests.get("output") or []
        if len(inputs) != len(outputs):
            raise TaskError(f"{kind!r} has {len(inputs)} inputs and {len(outputs)} outputs")
        cases += [{"input": _lines(i), "output": _lines(o)} for i, o in zip(inputs, outputs)]
    if not cases:
        raise TaskError("no public or private tests")
    solutions = json_field(row, "solutions", {}) or {}
    python = [s for lang, s in zip(solutions.get("language") or [], solutions.get("solution") or []) if lang == PYTHON3]
    return _example("codecontests", row.get("name") or lineno, _prompt(question, None, True),
                    {"cases": _cap(cases, options)},
                    {"difficulty": row.get("difficulty"), "source": row.get("source"),
                     "solution": python[0] if python else None})


def only_string_pickle(data: bytes) -> str:
    """The string a pickle stream holds, read without unpickling: any opcode but the few that
    write one string (and the framing around it) is refused."""
    allowed = {"PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "MEMOIZE", "BINPUT",
               "LONG_BINPUT", "PUT", "STOP"}
    strings = []
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name not in allowed:
                raise TaskError(f"the private tests are a pickle of more than a string (opcode {opcode.name}); "
                                "refusing to unpickle untrusted data")
            if opcode.name.endswith("UNICODE"):
                strings.append(arg)
    except TaskError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed stream
        raise TaskError(f"the private tests are not a readable pickle stream ({exc})") from None
    if len(strings) != 1:
        raise TaskError("the private tests' pickle does not hold exactly one string")
    return strings[0]


def decode_lcb_tests(value: Any) -> list:
    """LiveCodeBench test cases: a JSON list, or base64(zlib(pickle(JSON string)))."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        packed = base64.b64decode(value.encode("ascii"), validate=False)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_DECODED)
    except (ValueError, zlib.error, UnicodeEncodeError) as exc:
        raise TaskError(f"the private tests are neither JSON nor base64+zlib ({exc})") from None
    if inflater.unconsumed_tail:
        raise TaskError(f"the private tests expand past {MAX_DECODED} bytes")
    try:
        return json.loads(only_string_pickle(raw))
    except ValueError as exc:
        raise TaskError(f"the private tests' string is not JSON ({exc})") from None


def _livecodebench(lineno: int, row: dict, options: dict) -> Example:
    question = text(row, "question_content")
    starter = row.get("starter_code") or ""
    tests = decode_lcb_tests(row.get("public_test_cases")) + decode_lcb_tests(row.get("private_test_cases"))
    tests = [t for t in tests if isinstance(t, dict)]
    if not tests:
        raise TaskError("no test cases")
    kinds = {t.get("testtype") for t in tests}
    if kinds == {"functional"}:
        fn = (json_field(row, "metadata", {}) or {}).get("func_name")
        if not isinstance(fn, str) or not fn.isidentifier():
            raise TaskError("functional tests without a 'func_name' in 'metadata'")
        try:
            inputs = [[json.loads(line) for line in str(t["input"]).split("\n") if line.strip()] for t in tests]
            outputs = [json.loads(str(t["output"])) for t in tests]
        except (KeyError, ValueError) as exc:
            raise TaskError(f"a functional test is not JSON ({exc})") from None
        pairs = _cap(list(zip(inputs, outputs)), options)
        reference = {"fn_name": fn, "inputs": [i for i, _ in pairs], "outputs": [o for _, o in pairs]}
        if "class Solution" in starter:
            reference.update(class_name="Solution", prefix=LEETCODE_PREFIX)
    elif kinds == {"stdin"}:
        reference = {"cases": _cap([{"input": str(t.get("input", "")), "output": str(t.get("output", ""))}
                                    for t in tests], options)}
    else:
        raise TaskError(f"test types {sorted(map(str, kinds))}: expected all 'stdin' or all 'functional'")
    return _example("livecodebench", row.get("question_id", lineno), _prompt(question, starter, "cases" in reference),
                    reference, {"platform": row.get("platform"), "difficulty": row.get("difficulty"),
                                "contest_date": row.get("contest_date")})


PYTEST_FIXTURES = frozenset({"capsys", "capfd", "caplog", "monkeypatch", "tmp_path", "tmpdir", "request", "mocker"})


def check_pytest(source: str, module: str = "solution") -> None:
    """Refuse test code the sandbox cannot run for any program: a syntax error, an import of a
    module that is not in the standard library, a pytest built-in fixture."""
    import sys
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TaskError(f"the tests do not parse ({exc})") from None
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for name in names:
            root = name.split(".")[0]
            if root not in (module, "pytest") and root not in sys.stdlib_module_names:
                raise TaskError(f"the tests import {name!r}, which the sandbox does not have")
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            for arg in node.args.args:
                if arg.arg in PYTEST_FIXTURES:
                    raise TaskError(f"the tests use pytest's {arg.arg!r} fixture, which the sandbox does not provide")


def _kodcode(lineno: int, row: dict, options: dict) -> Example:
    question = text(row, "question")
    test = text(row, "test")
    check_pytest(test)
    info = json_field(row, "test_info", []) or []
    declarations = [i.get("function_declaration") for i in info if isinstance(i, dict) and i.get("function_declaration")]
    prompt = question
    if declarations:
        prompt += "\n\nYour code must define:\n```python\n" + "\n".join(str(d).strip() for d in declarations) + "\n```"
    prompt += f"\n\n{FUNCTION}"
    return _example("kodcode", row.get("question_id", lineno), prompt, {"pytest": test},
                    {"solution": row.get("solution"), "subset": row.get("subset")})


def load_mbpp(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """MBPP (function + asserts): mbpp:PATH, mbpp:hf[:ID], options path/limit/max_tests."""
    return build("mbpp", arg, split, strict, _mbpp)


def load_apps(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """APPS (stdin/stdout and fn_name calls): apps:PATH, apps:hf[:ID], options path/limit/max_tests."""
    return build("apps", arg, split, strict, _apps_like("apps"))


def load_taco(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """TACO (as APPS): taco:PATH, taco:hf[:ID], options path/limit/max_tests."""
    return build("taco", arg, split, strict, _apps_like("taco"))


def load_codecontests(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """CodeContests (stdin/stdout): codecontests:PATH, codecontests:hf[:ID], options path/limit/max_tests/generated."""
    return build("codecontests", arg, split, strict, _codecontests)


def load_livecodebench(arg: str | None = None, split: str = "test", strict: bool = False) -> Task:
    """LiveCodeBench (stdin and Solution().f calls, private tests decoded without pickle): livecodebench:PATH."""
    return build("livecodebench", arg, split, strict, _livecodebench)


def load_kodcode(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """KodCode (pytest tests): kodcode:PATH, kodcode:hf[:ID], options path/limit/max_tests."""
    return build("kodcode", arg, split, strict, _kodcode)
