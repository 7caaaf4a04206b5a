"""`reasoner verify NAME` for every verifier: answers, whole replies, options, plugins."""

import json

import pytest
from click.testing import CliRunner

from reasoner.cli import main


def run(*args):
    return CliRunner().invoke(main, ["verify", *args])


def test_math_takes_a_whole_reply_and_a_boxed_answer():
    r = run("math", "-r", "42", "-c", "Adding them up, the total is \\boxed{42}.")
    assert r.exit_code == 0 and r.output.startswith("correct")
    assert run("math", "-r", "42", "-c", "The total is \\boxed{41}.").exit_code == 1
    assert run("math", "-r", "42", "-c", "I am not sure.").output.startswith("no_answer")
    assert run("math", "-r", r"\frac12", "-a", r"$\boxed{\frac{1}{2}}$").exit_code == 0
    # two boxes are not one box: no unwrapping into "1}+\boxed{2"
    from reasoner.commands.verify import _unbox

    assert _unbox(r"\boxed{1}+\boxed{2}") == r"\boxed{1}+\boxed{2}"
    assert _unbox(r"$\boxed{\frac{1}{2}}$") == r"\frac{1}{2}"


def test_format_verifier_with_its_options():
    assert run("format", "-c", r"so \boxed{3}").exit_code == 0
    r = run("format", "-c", "just 3")
    assert r.exit_code == 1 and r.output.startswith("no_boxed")
    assert run("format", "-c", "<think>add</think> 42", "-O", "mode=think").exit_code == 0
    assert run("format", "-c", "42", "-O", "mode=think").output.startswith("no_think_block")
    assert run("format", "-c", "A: 42", "-O", "mode=regex", "-O", r"pattern=A: \d+").exit_code == 0


def test_an_option_the_verifier_lacks_is_one_line_listing_its_options():
    for args in (["format", "-c", "x", "--rel-tol", "0.1"], ["format", "-c", "x", "-O", "colour=red"]):
        r = run(*args)
        assert r.exit_code == 1, r.output
        assert r.output.strip() == "Error: verifier 'format' has no option " + \
            ("rel_tol" if "--rel-tol" in args else "colour") + " (its options: mode, pattern)"
    r = run("format", "-c", "x", "-O", "mode")
    assert r.exit_code == 2 and "is not KEY=VALUE" in r.output


def test_plugin_verifier_judges_a_reply(plugin_dir):
    r = run("likes7", "-c", "I pick 7")
    assert r.exit_code == 0 and r.output.startswith("seven")
    assert run("likes7", "-a", "8").output.startswith("no_seven")  # no check(): the answer is judged as a reply
    r = run("boom", "-c", "anything")  # a crashing plugin is a verdict, not a traceback
    assert r.exit_code == 1 and r.output.startswith("verifier_error") and "Traceback" not in r.output


@pytest.mark.docker
def test_code_verifier_from_the_command_line(tmp_path):
    tests = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}
    good = "Here:\n```python\ndef add(a, b):\n    return a + b\n```"
    r = run("code", "-r", json.dumps(tests), "-c", good)
    assert r.exit_code == 0 and r.output.startswith("correct"), r.output
    ref = tmp_path / "tests.json"
    ref.write_text(json.dumps(tests))
    r = run("code", "-r", f"@{ref}", "-c", "```python\ndef add(a, b):\n    return 3\n```")
    assert r.exit_code == 1 and r.output.startswith("failed"), r.output


def test_one_pair_needs_exactly_one_of_answer_and_completion():
    for args in (["math", "-r", "1"], ["math", "-r", "1", "-a", "1", "-c", "1"]):
        r = run(*args)
        assert r.exit_code == 1 and "give --answer or --completion" in r.output
    assert "no such file" in run("code", "-r", "@/nonexistent.json", "-c", "x").output
