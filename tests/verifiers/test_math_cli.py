"""`reasoner verify`: one pair, or a JSONL file of pairs and replies."""

import json

from click.testing import CliRunner

from reasoner.cli import main


def run(*args):
    return CliRunner().invoke(main, ["verify", *args])


def test_one_pair():
    result = run("math", "--reference", r"\frac12", "--answer", "0.5")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("correct") and "rule: number" in result.output
    result = run("math", "-r", "[2,5)", "-a", "[2,5]")
    assert result.exit_code == 1 and result.output.startswith("wrong")


def test_one_pair_options():
    assert run("math", "-r", r"\frac13", "-a", "0.33", "--rel-tol", "0.01").exit_code == 0
    slow = run("math", "-r", "1", "-a", r"\frac{\sin^2 x + \cos^2 x}{\tan y \cot y}", "--timeout", "0.001")
    assert slow.output.startswith("timeout")
    assert run("math", "-r", "x+1", "-a", "1+x", "--workers", "0").exit_code == 0


def test_user_errors_are_one_line():
    for args in (["math"], ["nosuch", "-r", "1", "-a", "1"], ["missing.jsonl"],
                 ["math", "-r", "1", "-a", "1", "--strategies", "guess"]):
        result = run(*args)
        assert result.exit_code == 1 and result.output.startswith("Error: ")
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_file(tmp_path):
    rows = [
        {"id": "a", "reference": "1/2", "answer": "0.5", "equivalent": True},
        {"id": "b", "reference": "[2,5)", "answer": "[2,5]", "equivalent": False},
        {"id": "c", "reference": "3", "completion": "It is 3.\n#### 3"},
        {"id": "d", "reference": "3", "completion": "It is 3.\n#### 3", "extract": ["boxed"]},
        {"id": "e", "reference": "7", "answer": "__import__('os')"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert "5 rows" in result.output and "false positives 0" in result.output
    verdicts = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()]
    assert [v["id"] for v in verdicts] == ["a", "b", "c", "d", "e"]
    assert [v["reason"] for v in verdicts] == ["correct", "wrong", "correct", "no_answer", "unparsable"]
    out = tmp_path / "out.jsonl"
    assert run(str(path), "-o", str(out), "--strategies", "boxed").exit_code == 0
    assert [json.loads(line)["reason"] for line in out.read_text().splitlines()][2] == "no_answer"


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"reference": "1", "answer": "1"}\nnot json\n')
    result = run(str(bad))
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b'{"reference": "1", "answer": "\xff1"}\n')  # invalid UTF-8 is read, not fatal
    assert run(str(mixed)).exit_code == 0
    assert run(str(mixed), "-r", "1").exit_code == 1
