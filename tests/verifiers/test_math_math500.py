"""MATH-500 reference answers: each against itself, against reformatted equivalents, against a neighbour."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasoner.verifiers.math_answer import MathVerifier
from reasoner.verifiers.math_answer.parser import parse_answer

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "math500_test.jsonl"
if not DATA.exists():
    pytest.skip(f"MATH-500 not found at {DATA} (../shared/data/math500_test.jsonl)", allow_module_level=True)
REFS = [json.loads(line)["answer"] for line in open(DATA, encoding="utf-8")]


def reformats(ref: str) -> list[str]:
    """Ways a reply may write the same answer; only the ones that change the text."""
    out = [f"${ref}$", ref.replace(" ", ""), re.sub(r"([+=]|,(?!\d{3}))", r"\1 ", ref).replace("  ", " "),
           ref.replace("\\frac", "\\dfrac"), ref.replace("\\dfrac", "\\frac"), ref.replace("\\pi", "π"),
           ref.replace(",\\!", "").replace(",\\! ", ""), ref.replace("^\\circ", ""),
           re.sub(r"\\text\{\((\w)\)\}", r"\1", ref), re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt \1", ref)]
    out.append(re.sub(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$", r"\1\2/\3", ref))
    if re.fullmatch(r"-?\d+", ref):
        out += [ref + ".0", f"{ref} + 0", f"\\frac{{{2 * int(ref)}}}{{2}}"]
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", ref)
    if m and all(p in (2, 5) for p in _prime_factors(int(m.group(3)))):
        out.append(m.group(1) + str(int(m.group(2)) / int(m.group(3))))
    if "(" in ref and "\\left" not in ref and "\\cup" not in ref and ref.startswith("("):
        out.append(ref.replace("(", "\\left(", 1)[::-1].replace(")", ")thgir\\", 1)[::-1])
    return sorted({o for o in out if o != ref})


def _prime_factors(n: int) -> set[int]:
    out, p = set(), 2
    while n > 1 and p * p <= n:
        while n % p == 0:
            out.add(p)
            n //= p
        p += 1
    return out | ({n} if n > 1 else set())


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(workers=2) as v:
        yield v


def test_every_reference_parses():
    failures = []
    for ref in REFS:
        try:
            parse_answer(ref)
        except ValueError as exc:
            failures.append((ref, str(exc)))
    assert failures == []


def test_each_reference_against_itself_in_a_reply(verifier):
    completions = [f"Working...\nSo the final answer is $\\boxed{{{ref}}}$." for ref in REFS]
    examples = [SimpleNamespace(id=str(i), reference=ref, meta={}) for i, ref in enumerate(REFS)]
    verdicts = verifier.verify_batch(completions, examples)
    assert [(r, v.reason) for r, v in zip(REFS, verdicts) if not v.ok] == []


def test_reformatted_equivalents(verifier):
    pairs = [(variant, ref) for ref in REFS for variant in reformats(ref)]
    assert len(pairs) > 600
    verdicts = verifier.check_batch([a for a, _ in pairs], [r for _, r in pairs])
    assert [(r, a, v.reason) for (a, r), v in zip(pairs, verdicts) if not v.ok] == []


def test_a_wrong_neighbour_is_wrong(verifier):
    pairs = []
    for i, ref in enumerate(REFS):
        other = next(REFS[j % len(REFS)] for j in range(i + 1, i + len(REFS)) if _differs(REFS[j % len(REFS)], ref))
        pairs.append((other, ref))
    verdicts = verifier.check_batch([a for a, _ in pairs], [r for _, r in pairs])
    assert [(r, a) for (a, r), v in zip(pairs, verdicts) if v.ok] == []


def _differs(a: str, b: str) -> bool:
    """Different answers by their digits and letters (not by their LaTeX spelling)."""
    key = lambda s: re.sub(r"^[a-z]\s*=|\\(?:left|right|text|mbox|dfrac|frac|!|,)|[^0-9a-zA-Z.]", "", s)
    return key(a) != key(b)


def test_the_boxed_answer_of_every_solution_matches(verifier):
    rows = [json.loads(line) for line in open(DATA, encoding="utf-8")]
    examples = [SimpleNamespace(id=r["unique_id"], reference=r["answer"], meta={}) for r in rows]
    verdicts = verifier.verify_batch([r["solution"] for r in rows], examples)
    assert [(r["answer"], v.reason) for r, v in zip(rows, verdicts) if not v.ok] == []


def test_gsm8k_solutions_match_their_final_line(verifier):
    path = DATA.parent / "gsm8k_test.jsonl"
    if not path.exists():
        pytest.skip(f"GSM8K not found at {path}")
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    examples = [SimpleNamespace(id=str(i), reference=r["answer"].split("####")[-1].strip(), meta={"extract": ["hash"]})
                for i, r in enumerate(rows)]
    verdicts = verifier.verify_batch([r["answer"] for r in rows], examples)
    assert sum(v.ok for v in verdicts) == len(rows)
