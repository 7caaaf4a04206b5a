"""The console: quiet by default (third-party notices only with -v), -v accepted after any command."""

import logging
import os
import subprocess
import sys
import warnings

import pytest
from click.testing import CliRunner

from reasoner.cli import configure_output, main


def _emit_from(module: str) -> list[str]:
    """Warn from code whose module is ``module``, as a library's own warnings.warn would."""
    with warnings.catch_warnings(record=True) as seen:
        configure_output(seen_verbose[0])
        exec(compile("import warnings\nwarnings.warn('notice', FutureWarning)", f"<{module}>", "exec"),
             {"__name__": module})
    return [str(w.message) for w in seen]


seen_verbose = [0]


def test_third_party_warnings_and_logs_only_with_verbose(monkeypatch):
    for key in ("TORCH_CPP_LOG_LEVEL", "VLLM_LOGGING_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    try:
        seen_verbose[0] = 0
        assert _emit_from("vllm.triton_utils.dispatcher") == []
        assert _emit_from("reasoner.train") == ["notice"]  # our own warnings always show
        assert logging.getLogger("vllm").getEffectiveLevel() == logging.ERROR
        assert os.environ["TORCH_CPP_LOG_LEVEL"] == "ERROR"  # torch's C++ NUMA notice
        seen_verbose[0] = 1
        assert _emit_from("vllm.triton_utils.dispatcher") == ["notice"]
        assert logging.getLogger("vllm").getEffectiveLevel() == logging.INFO
        assert "TORCH_CPP_LOG_LEVEL" not in os.environ
    finally:
        configure_output(0)
        warnings.resetwarnings()


def test_verbose_after_any_command_name():
    for args in (["verifiers", "list", "-v"], ["-v", "verifiers", "list"], ["tasks", "list", "-vv"],
                 ["sandbox", "-v", "check", "--help"], ["report", "-v", "--help"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, (args, r.output)
    r = CliRunner().invoke(main, ["verifiers", "list", "-vv"])
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    configure_output(0)
    warnings.resetwarnings()


@pytest.mark.vllm
def test_a_training_run_prints_no_third_party_notices(tiny_model, digit_task, tmp_path):
    """vLLM's import prints Triton notices, FutureWarnings and torch's C++ NUMA notice; none reach the user."""
    pytest.importorskip("vllm")
    cmd = [sys.executable, "-m", "reasoner.cli", "train", "--model", str(tiny_model), "--task", digit_task,
           "--sampler", "vllm", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2",
           "--max-new-tokens", "4", "--eval-size", "0", "--output", str(tmp_path / "run")]
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_CPP_LOG_LEVEL", "PYTHONWARNINGS")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for noise in ("Warning", "Triton", "NUMA"):
        assert noise not in r.stderr, r.stderr[-2000:]
    assert "run: " in r.stdout
    r = subprocess.run(cmd[:3] + ["-v"] + cmd[3:-1] + [str(tmp_path / "run-v")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0 and "Triton" in r.stderr  # what -v shows
