"""`reasoner train --tools` and `reasoner eval --tools` end to end on the tiny random model, with a
third-party tool plugin installed the way pip installs one (the random model calls it all the time)."""

import json

import pytest
from click.testing import CliRunner

from reasoner.cli import main
from tests.conftest import install_distribution, write_jsonl

TOOL = '''
from reasoner.tools import ToolCall, ToolResult

class Chatty:
    """Any 3 characters of new text are a call; the output names the tag and how many calls came before."""
    name = "chatty"
    stop = ()
    output_open, output_close = "<", ">"

    def __init__(self, tag="T", fail=False):
        self.tag, self.fail = tag, fail

    def find(self, text):
        return ToolCall(text[:3], 3) if len(text) >= 3 else None

    def run_many(self, histories):
        if self.fail:
            raise RuntimeError("tool plugin bug")
        return [ToolResult(f"{self.tag}{len(h) - 1}" + "9" * 40, error=False, seconds=0.01) for h in histories]

    def close(self):
        pass
'''
FAST = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "9",
        "--micro-batch-size", "8", "--learning-rate", "1e-3", "--quiet"]


@pytest.fixture
def tool_plugin(tmp_path, monkeypatch):
    install_distribution(tmp_path, "reasoner_test_tool", TOOL, "reasoner-test-tool", "0.1",
                         "[reasoner.tools]\nchatty = reasoner_test_tool:Chatty\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    import sys

    sys.modules.pop("reasoner_test_tool", None)


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _train(tiny_model, digit_task, out, *extra):
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 2, "--eval-size", 0, "--output", out,
               *FAST, *extra)
    assert r.exit_code == 0, r.output
    return read_jsonl(out / "metrics.jsonl"), [c for rec in read_jsonl(out / "samples.jsonl") for c in rec["completions"]]


def test_train_with_a_tool_plugin_and_its_settings(tiny_model, digit_task, tmp_path, tool_plugin):
    metrics, samples = _train(tiny_model, digit_task, tmp_path / "a", "--tools", "chatty", "--max-tool-calls", 2,
                              "--tool-output-tokens", 3, "--tool-option", "chatty.tag=Q")
    for m in metrics:
        assert 0 < m["tool/calls_per_completion"] <= 2 and 0 < m["tool/used_frac"] <= 1
        assert m["tool/errors"] == 0 and m["time/tool"] >= 0 and "tool/exec_seconds" in m
    used = [s for s in samples if s["tool_calls"]]
    assert used and max(s["tool_calls"] for s in samples) <= 2
    for s in used:
        assert "<Q0" in s["transcript"] and "Q0" not in s["text"]  # the option reached the tool; text is the model's
        assert "9999" not in s["transcript"]  # 3 tokens kept: "Q", "0", "9" with the char-level tokenizer
        assert "output truncated" in s["transcript"]
    # fewer calls allowed, fewer calls made; more output tokens, longer outputs
    metrics1, samples1 = _train(tiny_model, digit_task, tmp_path / "b", "--tools", "chatty", "--max-tool-calls", 1,
                                "--tool-output-tokens", 12)
    assert max(s["tool_calls"] for s in samples1) == 1
    assert any("9" * 8 in s["transcript"] for s in samples1 if s["tool_calls"])
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert "tool" in summary["seconds_per_step"]


def test_a_crashing_tool_plugin_is_tool_output(tiny_model, digit_task, tmp_path, tool_plugin):
    metrics, samples = _train(tiny_model, digit_task, tmp_path / "c", "--tools", "chatty",
                              "--tool-option", "chatty.fail=true")
    assert all(m["tool/errors"] > 0 for m in metrics)
    assert any("ToolError: RuntimeError: tool plugin bug" in s["transcript"] for s in samples)


def test_an_unknown_tool_is_refused_before_anything_loads(tiny_model, digit_task, tmp_path):
    r = CliRunner().invoke(main, ["train", "--model", str(tiny_model), "--task", digit_task, "--tools", "nope",
                                  "--output", str(tmp_path / "d")])
    assert r.exit_code != 0 and "unknown tool 'nope'" in r.output and "python" in r.output
    assert not (tmp_path / "d").exists()


def test_eval_with_a_tool(tiny_model, tmp_path, tool_plugin):
    rows = [{"id": f"q{i}", "prompt": f"what is {i}+1?", "reference": str(i + 1), "verifier": "math"} for i in range(4)]
    data = write_jsonl(tmp_path / "q.jsonl", rows)
    r = invoke("eval", tiny_model, "--task", f"jsonl:{data}", "--sampler", "hf", "--max-new-tokens", 8,
               "--tools", "chatty", "--max-tool-calls", 1, "--output", tmp_path / "out")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [metrics] = summary["tasks"].values()
    assert metrics["calls_per_completion"] > 0 and "tool" in metrics["seconds"] and "used_frac" in metrics
    [records] = [read_jsonl(p) for p in (tmp_path / "out").glob("*.jsonl")]
    samples = [c for rec in records for c in rec["completions"]]
    assert all(c["tool_calls"] <= 1 for c in samples) and any("<T0" in c["transcript"] for c in samples)


def test_ppo_with_a_tool(tiny_model, digit_task, tmp_path, tool_plugin):
    metrics, samples = _train(tiny_model, digit_task, tmp_path / "p", "--algorithm", "ppo", "--tools", "chatty",
                              "--max-tool-calls", 2, "--tool-output-tokens", 3)
    assert all(m["tool/calls_per_completion"] > 0 for m in metrics)
    assert all("value/explained_variance" in m for m in metrics)
