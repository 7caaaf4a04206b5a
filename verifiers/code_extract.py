"""Which code of a reply runs: fenced blocks, and the rule that picks among them.

``extract="defining"`` (the code verifier's default) takes the **last Python block that
defines a name the tests call** (the entry point, ``fn_name``/``class_name``, the names
``from solution import`` brings in, or the functions MBPP asserts call), plus the top-level
imports, functions and classes of earlier blocks that this block uses and does not define
itself. Usage examples, test runs and prints in other blocks do not run. For stdin/stdout
tests it is the last block that reads standard input (``input``, ``sys.stdin``, ``open(0)``).
When no block qualifies, it is the last block, as ``last_block``.

The rule is one a policy gains nothing from gaming: exactly one block's code runs as written,
with only definitions taken from earlier blocks; whatever it runs, the tests are decided in the
sandbox's harness, which the program cannot reach. A redefinition in a later block wins, as it
would in one file. Only the last `MAX_BLOCKS` blocks are considered.
"""

from __future__ import annotations

import ast
import builtins
import re

EXTRACT = ("defining", "last_block", "first_block", "whole")
LANGUAGE_TAGS = {"python": {"", "python", "py", "python3", "py3"}, "cpp": {"", "cpp", "c++", "cc", "cxx"}}
MAX_BLOCKS = 64
MAX_CODE = 1 << 20  # characters of a block parsed to find its definitions
STDIN = frozenset({"<stdin>"})  # `wanted_names` of stdin/stdout tests: the program reads its input
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`{]*)")
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks of a Markdown reply as ``(language tag, code)``; an unclosed last block counts."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, tag = m.group(1), m.group(2).lower()
        body, i = [], i + 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and set(lines[i].strip()) == {fence[0]}):
            body.append(lines[i])
            i += 1
        blocks.append((tag, "\n".join(body) + "\n"))
        i += 1
    return blocks


def extract_code(text: str, mode: str = "last_block", language: str = "python",
                 names: frozenset[str] | set[str] = frozenset()) -> str | None:
    """The program in a reply (see the module docstring), or None when there is none."""
    if not isinstance(text, str):
        return None
    if mode == "whole":
        return text if text.strip() else None
    tags = LANGUAGE_TAGS.get(language, {""})
    blocks = [code for tag, code in code_blocks(text) if tag in tags and code.strip()]
    if not blocks:
        return None
    if mode == "first_block":
        return blocks[0]
    if mode == "defining" and language == "python" and names == STDIN:
        return reading(blocks[-MAX_BLOCKS:])
    if mode == "defining" and language == "python" and names:
        return defining(blocks[-MAX_BLOCKS:], frozenset(names))
    return blocks[-1]


def _parse(code: str) -> ast.Module | None:
    if len(code) > MAX_CODE:
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def bound_at_top(node: ast.stmt) -> set[str]:
    """Names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def free_names(tree: ast.AST) -> set[str]:
    """Names ``tree`` reads that it never binds, other than builtins."""
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return {n for n in loaded - bound if not hasattr(builtins, n)}


def defining(blocks: list[str], names: frozenset[str]) -> str:
    """The last block that defines one of ``names`` at top level, after the definitions it needs
    from earlier blocks; the last block when none defines them."""
    trees = [_parse(code) for code in blocks]
    chosen = next((i for i in range(len(blocks) - 1, -1, -1) if trees[i] is not None
                   and any(names & bound_at_top(node) for node in trees[i].body)), None)
    if chosen is None:
        return blocks[-1]
    needed = free_names(trees[chosen])
    taken: list[tuple[int, int, str]] = []
    for i in range(chosen - 1, -1, -1):
        tree = trees[i]
        if tree is None or not needed:
            continue
        for k in range(len(tree.body) - 1, -1, -1):
            node = tree.body[k]
            provides = bound_at_top(node) & needed if isinstance(node, _DEFINITIONS) else set()
            if provides:
                needed = (needed - provides) | free_names(node)
                taken.append((i, k, ast.get_source_segment(blocks[i], node) or ""))
    parts = [segment for _, _, segment in sorted(taken)]
    return "\n\n".join([*parts, blocks[chosen]]) if parts else blocks[chosen]


def reads_stdin(tree: ast.AST) -> bool:
    """Whether code reads standard input: ``input``, ``sys.stdin``, ``stdin`` or ``open(0)``."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in ("input", "stdin") or isinstance(n, ast.Attribute) and n.attr == "stdin":
            return True
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open" and n.args
                and isinstance(n.args[0], ast.Constant) and n.args[0].value == 0):
            return True
    return False


def reading(blocks: list[str]) -> str:
    """The last block that reads standard input (``input``, ``sys.stdin``); the last block when none does."""
    for code in reversed(blocks):
        tree = _parse(code)
        if tree is not None and reads_stdin(tree):
            return code
    return blocks[-1]


def wanted_names(tests) -> frozenset[str]:
    """The names the tests call in the program: what ``defining`` looks for."""
    from reasoner.sandbox import CallTests, FunctionTests, PytestTests
    if isinstance(tests, CallTests):
        return frozenset({tests.class_name or tests.fn_name})
    if isinstance(tests, FunctionTests):
        if tests.entry_point:
            return frozenset({tests.entry_point})
        tree = _parse(tests.source)
        return frozenset(free_names(tree)) if tree is not None else frozenset()
    if isinstance(tests, PytestTests):
        tree = _parse(tests.source)
        if tree is None:
            return frozenset()
        root = tests.module.split(".")[0]
        out = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == tests.module
               for a in node.names if a.name != "*"}
        out |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id == root}
        return frozenset(out)
    return STDIN
