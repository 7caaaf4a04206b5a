"""Reward settings a user gets wrong or wants: a left-out task term, Python-function rewards,
verifier options, and a run where every group ties."""

import json
import textwrap

import pytest
from click.testing import CliRunner

from reasoner.cli import main
from reasoner.config import ConfigError, TrainConfig, from_dict
from reasoner.rewards import Rewarder
from reasoner.tasks import Example

TINY = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4",
        "--eval-size", "0", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rewards_without_the_task_term_are_refused():
    with pytest.raises(ConfigError, match=r"rewards format=0.2 leave out 'task'.*--rewards task=1"):
        from_dict(TrainConfig, {"rewards": {"format": 0.2}})
    assert from_dict(TrainConfig, {"rewards": {"task": 0, "format": 1}}).rewards == {"task": 0.0, "format": 1.0}
    r = invoke("train", "--rewards", "format=0.2")
    assert r.exit_code == 1 and "leave out 'task'" in r.output


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent('''
        def short(completion, example):
            return 1.0 if len(completion) < 3 else 0.0

        def crashes(completion, example):
            raise RuntimeError("bug in my reward")

        def not_a_number(completion, example):
            return "yes"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"


def test_a_python_function_is_a_reward(tiny_model, digit_task, tmp_path, reward_module):
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 2, "--rewards", "task=1",
               "--rewards", f"{reward_module}:short=0.5", "--rewards", f"{reward_module}:crashes=0.1",
               "--output", out, *TINY)
    assert r.exit_code == 0, r.output
    metrics = [m for m in read_jsonl(out / "metrics.jsonl") if "reward/mean" in m]
    assert f"reward/{reward_module}:short" in metrics[0]
    assert metrics[0][f"reward/{reward_module}:crashes_errors"] == 4  # every reply: a verdict, not a crash
    for record in read_jsonl(out / "samples.jsonl"):
        for c in record["completions"]:
            short = float(len(c["text"]) < 3)
            task = c["verdicts"]["task"]["reward"]
            assert c["reward"] == pytest.approx(task + 0.5 * short, abs=1e-4)
            assert c["verdicts"][f"{reward_module}:crashes"]["reason"] == "verifier_error"


def test_reward_functions_by_hand(reward_module):
    ex = Example(id="a", prompt="p", reference="x", verifier="format")
    scored = Rewarder({"task": 0, f"{reward_module}:short": 1, f"{reward_module}:not_a_number": 1}).judge(
        ["ab", "abcd"], [ex, ex])
    assert scored.terms[f"{reward_module}:short"] == [1.0, 0.0]
    assert [v.reason for v in scored.verdicts[f"{reward_module}:not_a_number"]] == ["verifier_error"] * 2
    r = invoke("train", "--rewards", "task=1", "--rewards", f"{reward_module}:missing=1", "--sampler", "hf")
    assert r.exit_code == 1 and "cannot import 'missing'" in r.output


def test_verifier_options_reach_the_verifier():
    ex = Example(id="a", prompt="p", reference="42", verifier="math")
    plain = Rewarder({"task": 1}).judge(["It is 42"], [ex])
    assert plain.verdicts["task"][0].reason == "no_answer"
    last = Rewarder({"task": 1}, {"math": {"strategies": "last_number", "workers": 0}}).judge(["It is 42"], [ex])
    assert last.verdicts["task"][0].reason == "correct"


def test_verifier_options_on_the_command_line(tiny_model, digit_task, tmp_path):
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", tmp_path / "a",
               "--verifier-option", "format.mode=nonsense", *TINY)
    assert r.exit_code == 1 and "format mode 'nonsense'" in r.output  # the option got to the verifier
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", tmp_path / "b",
               "--verifier-option", "mth.timeout=3", *TINY)
    assert r.exit_code == 1 and "no reward term or example uses that verifier (used: format)" in r.output
    r = invoke("train", "--verifier-option", "timeout=3")
    assert r.exit_code == 2 and "is not NAME.KEY=VALUE" in r.output
    cfg = from_dict(TrainConfig, {"verifier_options": {"math": {"timeout": 5, "strategies": "boxed,last_number"}}})
    assert cfg.verifier_options == {"math": {"timeout": 5, "strategies": "boxed,last_number"}}


def test_a_run_where_every_group_ties_says_why(tiny_model, tmp_path, caplog):
    data = tmp_path / "bare.jsonl"  # a math task; a random model's replies hold no answer the verifier reads
    data.write_text("".join(json.dumps({"prompt": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(8)))
    r = invoke("train", "--model", tiny_model, "--task", f"jsonl:{data}", "--steps", 3, "--output", tmp_path / "r",
               *TINY)
    assert r.exit_code == 0, r.output
    assert "every group's completions got the same reward" in caplog.text
    assert "finds no answer" in caplog.text and "math.strategies=boxed,hash,answer_is,last_number" in caplog.text
    m = read_jsonl(tmp_path / "r" / "metrics.jsonl")[0]
    assert m["verdict/no_answer"] == 1.0
