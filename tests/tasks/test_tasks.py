import logging

import pytest

from reasoner import tasks
from reasoner.tasks import TaskError
from reasoner.tasks.jsonl import build, convert_row
from tests.conftest import SHARED_DATA, write_jsonl

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def test_registry_lists_builtins():
    names = tasks.available()
    assert {"arithmetic", "gsm8k", "jsonl"} <= set(names)
    assert all(names.values())


def test_arithmetic_answers_are_exact_and_seeded():
    t = tasks.load("arithmetic:ops=+-*/,size=400")
    assert len(t) == 400 and t.split == "train"
    for ex in t:
        a, op, b = ex.meta["a"], ex.meta["op"], ex.meta["b"]
        assert int(ex.reference) == OPS[op](a, b) >= 0
        if op == "/":
            assert a % b == 0
        assert str(a) in ex.prompt and str(b) in ex.prompt
    again = tasks.load("arithmetic:ops=+-*/,size=400")
    assert [e.prompt for e in again] == [e.prompt for e in t]
    other = tasks.load("arithmetic:ops=+-*/,size=400,seed=1")
    assert [e.prompt for e in other] != [e.prompt for e in t]


def test_arithmetic_splits_are_disjoint():
    key = lambda e: (e.meta["a"], e.meta["op"], e.meta["b"])  # noqa: E731
    train = {key(e) for e in tasks.load("arithmetic")}
    test = tasks.load("arithmetic", split="test")
    assert len(test) == 200 and test.split == "test"
    assert not train & {key(e) for e in test}


@pytest.mark.parametrize("spec, message", [
    ("arithmetic:ops=^", "ops"), ("arithmetic:style=poem", "style"), ("arithmetic:max_value=x", "integer"),
    ("arithmetic:max_value=3,test_size=200", "distinct problems"), ("arithmetic:colour=red", "unknown option"),
    ("nosuchtask", "unknown task 'nosuchtask' (known: aime24, amc23, apps, arithmetic"), ("gsm8k:/no/such.jsonl", "not found"),
    ("jsonl:/no/such/file.jsonl", "not found"),
])
def test_bad_task_specs(spec, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace("^", r"\^")):
        tasks.load(spec)


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k_test.jsonl").is_file(), reason="shared benchmark data not present")
def test_gsm8k_loader_reads_reference_answers():
    t = tasks.load(f"gsm8k:{SHARED_DATA / 'gsm8k_test.jsonl'}")
    assert len(t) == 1319 and t.split is None
    assert t[0].reference == "18"
    assert all(ex.reference.lstrip("-").replace(".", "").isdigit() for ex in t)
    assert "\\boxed{}" in t[0].prompt


def test_jsonl_malformed_rows_are_skipped_with_one_warning(tmp_path, caplog):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"question": "1+1?", "answer": "2"},
        "{not json",
        "[1, 2]",
        {"question": "no answer here"},
        {"prompt": [{"role": "user", "content": "2+2?"}], "reference": "4", "verifier": "math", "level": 3},
    ])
    with caplog.at_level(logging.WARNING):
        t = tasks.load(f"jsonl:{path}")
    assert [e.reference for e in t] == ["2", "4"]
    assert t[1].meta == {"level": 3} and t[1].id == "line-5"
    text = caplog.text
    assert "skipped 2 malformed row(s), first at line 2" in text
    assert "skipped 1 row(s) without the needed fields, first at line 4" in text


def test_jsonl_strict_mode_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "q", "answer": "1"}, {"question": "q2"}])
    with pytest.raises(TaskError, match=r"p.jsonl:2: no reference field"):
        build(path, "x", convert_row, strict=True)


def test_jsonl_with_no_usable_row_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ["garbage", {"q": 1}])
    with pytest.raises(TaskError, match="no usable rows"):
        tasks.load(f"jsonl:{path}")


def test_jsonl_duplicate_ids_are_one_line_error(tmp_path, tiny_model):
    from click.testing import CliRunner

    from reasoner.cli import main

    rows = [{"id": "a", "question": "1+1?", "answer": "2"}, {"id": "b", "question": "2+2?", "answer": "4"},
            {"id": "a", "question": "3+3?", "answer": "6"}]
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    with pytest.raises(TaskError, match=r"dup.jsonl:3: duplicate id 'a' \(first at line 1\)"):
        tasks.load(f"jsonl:{path}")
    r = CliRunner().invoke(main, ["train", "--model", str(tiny_model), "--task", f"jsonl:{path}", "--sampler", "hf",
                                  "--steps", "1", "--output", str(tmp_path / "run"), "--quiet"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "duplicate id 'a'" in r.output and r.output.strip().count("\n") == 0
    # rows without ids get distinct ones from their line numbers
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"question": "q", "answer": "1"}, {"question": "q", "answer": "1"}])
    assert [e.id for e in tasks.load(f"jsonl:{plain}").examples] == ["line-1", "line-2"]


def test_unknown_arithmetic_option_lists_the_valid_ones():
    with pytest.raises(TaskError, match=r"unknown option\(s\) 'max_vlaue' \(did you mean 'max_value'\?\); "
                                        r"valid options: .*min_value.*ops.*style"):
        tasks.load("arithmetic:max_vlaue=9")
