"""The labelled answer pairs (tests/data/math_pairs.jsonl): no false positive, accuracy floors per category."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from reasoner.verifiers.math_answer import MathVerifier, quick_compare
from reasoner.verifiers.math_answer.compare import compare

PAIRS = [json.loads(line) for line in open(Path(__file__).parent / "data" / "math_pairs.jsonl", encoding="utf-8")]
CATEGORY_FLOOR = 0.9   # every category
OVERALL_FLOOR = 0.98   # the whole set (measured: 449/450, see docs/benchmarks.md)


@pytest.fixture(scope="module")
def decisions():
    return [compare(p["answer"], p["reference"])[0] == "correct" for p in PAIRS]


def test_the_set_is_large_and_covers_every_category():
    cats = {p["category"] for p in PAIRS}
    assert len(PAIRS) >= 400
    assert {"integer", "decimal_fraction", "radical_pi", "expression", "equation", "tuple", "list_set", "interval",
            "matrix", "complex", "percent", "degree", "unit_text", "thousands", "choice"} <= cats
    for cat in cats:  # each category has near-misses as well as equivalents
        labels = {p["equivalent"] for p in PAIRS if p["category"] == cat}
        assert labels == {True, False}, cat


def test_no_false_positive(decisions):
    false_pos = [(p["reference"], p["answer"]) for p, ok in zip(PAIRS, decisions) if ok and not p["equivalent"]]
    assert false_pos == []


def test_accuracy_floors(decisions):
    right, total = defaultdict(int), defaultdict(int)
    for p, ok in zip(PAIRS, decisions):
        total[p["category"]] += 1
        right[p["category"]] += ok == p["equivalent"]
    for cat in total:
        assert right[cat] / total[cat] >= CATEGORY_FLOOR, (cat, right[cat], total[cat])
    assert sum(right.values()) / len(PAIRS) >= OVERALL_FLOOR


def test_fast_path_agrees_with_the_full_check(decisions):
    decided = 0
    for p, ok in zip(PAIRS, decisions):
        quick = quick_compare(p["answer"], p["reference"], 1e-6)
        if quick is not None:
            decided += 1
            assert (quick[0] == "correct") == ok, p
    assert decided >= 40  # the fast path does see a real share of the pairs


def test_pool_gives_the_same_decisions(decisions):
    with MathVerifier(workers=2) as verifier:
        verdicts = verifier.check_batch([p["answer"] for p in PAIRS], [p["reference"] for p in PAIRS])
    assert [v.ok for v in verdicts] == decisions
    assert {v.reason for v in verdicts} <= {"correct", "wrong", "unparsable"}
