"""Adversarial and real-format answers (data/math_adversarial.jsonl): one case per labelled pair.

Each row is an answer (or a whole reply, extracted with the default strategies) and a reference,
the label a careful grader gives, a one-line reason and its class. Rows labelled different are
what a policy could learn to write for free reward (merged numbers, a stray ``\\%``, a word after
a number, a numeric coincidence, a macro); the rows labelled equal beside them are the formats real
models write. Zero false positives is asserted pair by pair; a row with ``verdict`` also fixes
the reason (``unparsable`` for macro definitions and oversized inputs).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasoner.verifiers.math_answer import MathVerifier

ROWS = [json.loads(line) for line in open(Path(__file__).parent / "data" / "math_adversarial.jsonl", encoding="utf-8")]


def _id(row) -> str:
    text = row.get("answer", row.get("reply", ""))
    return f"{row['category']}:{text[:40]}|{row['reference'][:20]}"


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(workers=0, timeout=3.0) as v:
        yield v


def test_the_file_covers_every_class():
    assert len(ROWS) >= 150
    cats = {r["category"] for r in ROWS}
    assert len(cats) >= 20
    for cat in cats:  # each class has a pair labelled equal beside those labelled different, or a fixed verdict
        labels = {r["equivalent"] for r in ROWS if r["category"] == cat}
        assert True in labels, cat
    assert all(r["reason"] for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_pair(verifier, row):
    if "reply" in row:
        verdict = verifier.verify(row["reply"], SimpleNamespace(id="adv", reference=row["reference"], meta={}))
    else:
        verdict = verifier.check(row["answer"], row["reference"])
    assert verdict.ok == row["equivalent"], (row["reason"], verdict.reason, verdict.details)
    if "verdict" in row:
        assert verdict.reason == row["verdict"], (row["reason"], verdict.details)
