"""``reasoner sandbox``: run, check, clean, help, and the error without Docker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reasoner.cli import COMMANDS, main


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["sandbox", *args], env=env, catch_exceptions=False)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "add.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "sub.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "tests.py").write_text("def check(candidate):\n    assert candidate(2, 3) == 5\n")
    (tmp_path / "sum.cpp").write_text("#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b;}\n")
    (tmp_path / "cases.jsonl").write_text('{"input": "2 3", "output": "5"}\n\n{"input": "1 1", "output": "2"}\n')
    return tmp_path


def test_help_has_runnable_examples():
    assert COMMANDS["sandbox"] == "reasoner.commands.sandbox:sandbox"
    assert "reasoner sandbox check" in invoke("--help").output
    for command in ("build", "check", "run", "clean"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "reasoner sandbox " + command in result.output


@pytest.mark.docker
def test_run_prints_the_execution_whatever_the_verdict(files):
    good = invoke("run", str(files / "add.py"), "--tests", str(files / "tests.py"), "--entry-point", "add")
    assert good.exit_code == 0 and json.loads(good.output)["status"] == "passed"
    bad = invoke("run", str(files / "sub.py"), "--tests", str(files / "tests.py"), "--entry-point", "add")
    assert bad.exit_code == 0
    execution = json.loads(bad.output)
    assert execution["status"] == "failed" and execution["details"]["test"] == "assert candidate(2, 3) == 5"


@pytest.mark.docker
def test_run_cases_cpp_and_limits(files):
    result = invoke("run", str(files / "sum.cpp"), "--cases", str(files / "cases.jsonl"))
    assert json.loads(result.output)["status"] == "passed", result.output
    (files / "loop.py").write_text("while True:\n    pass\n")
    result = invoke("run", str(files / "loop.py"), "--timeout", "1", "--memory", "256")
    assert json.loads(result.output)["status"] == "timeout"


def test_run_usage_errors(files):
    (files / "bad.jsonl").write_text("not json\n")
    result = invoke("run", str(files / "add.py"), "--cases", str(files / "bad.jsonl"))
    assert result.exit_code == 2 and "line 1 is not a JSON object" in result.output
    result = invoke("run", str(files / "add.py"), "--tests", str(files / "tests.py"), "--cases",
                    str(files / "cases.jsonl"))
    assert result.exit_code == 2 and "not both" in result.output
    result = invoke("run", str(files / "add.py"), "--timeout", "0")
    assert result.exit_code == 2 and "timeout" in result.output


def test_no_docker_is_one_line_with_the_fix(files):
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = invoke("run", str(files / "add.py"), env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the Docker daemon")
    assert "start the Docker engine" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    result = invoke("check", env=env)
    assert result.exit_code == 1 and result.output.startswith("FAIL  docker daemon: cannot reach")


@pytest.mark.docker
def test_check_and_clean():
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()] == ["ok", "ok", "ok"]
    result = invoke("check", "--tag", "reasoner-sandbox:nope")
    assert result.exit_code == 1 and "reasoner sandbox build --tag reasoner-sandbox:nope" in result.output
    assert invoke("clean").output.startswith("removed ")


@pytest.mark.docker
def test_check_and_clean_every_host():
    from reasoner.sandbox import engine
    local, dead = engine.endpoint(), "unix:///nonexistent/docker.sock"
    result = invoke("check", "--hosts", f"{local},{local}")
    assert result.exit_code == 0, result.output
    assert [line.split(": ")[0] for line in result.output.splitlines()] == [
        f"ok    {what} {name}" for name in (local, f"{local}#2") for what in ("docker daemon", "image", "runner")]
    result = invoke("check", "--hosts", f"{dead},{local}")  # every host is checked, then exit 1
    assert result.exit_code == 1
    assert result.output.startswith(f"FAIL  docker daemon {dead}: cannot reach the Docker daemon at {dead}")
    assert result.output.count("\nok    ") == 3
    result = invoke("clean", "--hosts", f"{local},{local}")
    assert [line.split(": removed ")[0] for line in result.output.splitlines()] == [local, f"{local}#2"]
    result = invoke("clean", "--hosts", f"{local},{dead}")
    assert result.exit_code == 1 and result.output.startswith(f"{local}: removed ")
    assert f"Error: cannot reach the Docker daemon at {dead}" in result.output


def test_hosts_usage_error():
    for command in ("check", "clean"):
        result = invoke(command, "--hosts", "ssh://me@node1")
        assert result.exit_code == 2 and "ssh -NL" in result.output


@pytest.mark.docker
def test_run_calls_and_pytest(files):
    (files / "calls.json").write_text('{"fn_name": "add", "inputs": [[1, 2], [2, 2], [0, 0]], "outputs": [3, 5, 0]}')
    result = json.loads(invoke("run", str(files / "add.py"), "--calls", str(files / "calls.json"), "--all-tests").output)
    assert result["status"] == "failed" and (result["details"]["tests_passed"], result["details"]["tests_total"]) == (2, 3)
    (files / "test_add.py").write_text("from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    result = json.loads(invoke("run", str(files / "add.py"), "--pytest", str(files / "test_add.py")).output)
    assert result["status"] == "passed", result
    (files / "bad.json").write_text('{"fn_name": "add", "inputs": [[1]], "outputs": []}')
    bad = invoke("run", str(files / "add.py"), "--calls", str(files / "bad.json"))
    assert bad.exit_code == 2 and "as many outputs as inputs" in bad.output
