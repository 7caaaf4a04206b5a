"""``reasoner verify``: judge one answer, or a JSONL file of them, with a verifier plugin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import click

BATCH = 256  # rows judged per verify_batch call


@click.command()
@click.argument("target")
@click.option("-r", "--reference", help="Reference (one-pair mode): text, JSON ({...} or [...]) or @FILE.")
@click.option("-a", "--answer", help="Answer to judge, as written (no extraction; an outer \\boxed{...} is unwrapped).")
@click.option("-c", "--completion", help="A whole model reply to judge: the verifier extracts the answer as in training.")
@click.option("-O", "--option", "extra", multiple=True, metavar="KEY=VALUE",
              help="An option of the verifier (repeatable; numbers and true/false are read as such, the rest as text).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where FILE mode writes verdicts  [default: FILE.verdicts.jsonl]")
@click.option("--strategies", help="math: answer extraction for completions, e.g. 'boxed' or 'boxed,hash,answer_is,last_number'.")
@click.option("--rel-tol", type=float, help="math: relative tolerance where a decimal is involved  [default: 1e-6]")
@click.option("--timeout", type=float, help="Seconds per check before a 'timeout' verdict  [default: the verifier's]")
@click.option("--workers", type=int, help="Check processes or sandbox slots (0: in this process)  [default: the verifier's]")
def verify(target, reference, answer, completion, extra, output, strategies, rel_tol, timeout, workers):
    """Judge answers with a verifier: one pair (TARGET is the verifier's name) or a JSONL FILE (math).

    \b
    One pair; exit status 0 when the verdict is a pass, 1 when it is not:
      reasoner verify math --reference '\\frac12' --answer '0.5'
      reasoner verify math -r '[2,5)' -a '2 \\le x < 5'
      reasoner verify math -r 42 -c 'So the total is \\boxed{42}.'
      reasoner verify format -c '<think>...</think> 42' -O mode=think
      reasoner verify code -r '{"tests": ["assert add(1, 2) == 3"]}' -c $'```python\\ndef add(a, b): return a + b\\n```'
    \b
    Many: each line of FILE is a JSON object with "reference" and either "completion" (a model
    reply; the answer is extracted) or "answer" (taken as written); optional "id", "extract" (the
    extraction strategies for that row) and "equivalent" (a true/false label: the summary then
    reports agreement and false positives):
      reasoner verify tests/verifiers/data/math_pairs.jsonl -o /tmp/verdicts.jsonl
    """
    from reasoner import verifiers

    options = {k: v for k, v in (("strategies", strategies), ("rel_tol", rel_tol), ("timeout", timeout),
                                 ("workers", workers)) if v is not None}
    options.update(_parse_options(extra))
    path = Path(target)
    if path.suffix == ".jsonl" or path.is_file():
        if reference is not None or answer is not None or completion is not None:
            raise click.ClickException("--reference/--answer/--completion are for one pair; FILE mode reads them "
                                       "from the file")
        if not path.is_file():
            raise click.ClickException(f"no such file: {path}")
        verifier = _load(verifiers, "math", options)
        try:
            _verify_file(verifier, path, output or path.with_suffix(".verdicts.jsonl"))
        finally:
            verifier.close()
        return
    if (answer is None) == (completion is None):
        raise click.ClickException(f"give --answer or --completion (one of them) to judge with {target!r}, "
                                   f"or a .jsonl FILE (e.g. reasoner verify {target} -r '\\frac12' -a 0.5)")
    verifier = _load(verifiers, target, options)
    try:
        ref = _reference(reference)
        if answer is not None and hasattr(verifier, "check"):
            if ref is None:
                raise click.ClickException(f"--answer needs --reference to compare with ({target!r} checks pairs)")
            verdict = verifier.check(_unbox(answer), ref)
        else:  # a whole reply, or a verifier that only judges replies: judge it as in training
            example = SimpleNamespace(id="cli", reference=ref, meta={}, prompt="", verifier=target)
            verdict = verifiers.safe_verify(verifier, completion if completion is not None else answer, example)
    finally:
        verifier.close()
    if verdict is None:
        raise click.ClickException(f"verifier {target!r} does not apply to this example (it returned no verdict)")
    click.echo(_line(verdict))
    raise SystemExit(0 if verdict.ok else 1)


def _parse_options(items) -> dict:
    from reasoner.config import scalar

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-O/--option")
        out[key.strip()] = scalar(value)
    return out


def _reference(text: str | None):
    if text is None:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise click.ClickException(f"--reference {text}: no such file")
        text = path.read_text()
    stripped = text.strip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return text  # an interval such as [2,5) is a math reference, not JSON
        if isinstance(value, dict):
            return value
    return text


def _unbox(answer: str) -> str:
    """``\\boxed{x}`` -> ``x`` when one box is the whole answer (how answers are often copied)."""
    stripped = answer.strip().strip("$").strip()
    for head in ("\\boxed{", "\\fbox{"):
        if stripped.startswith(head) and stripped.endswith("}"):
            depth, body = 0, stripped[len(head):-1]
            for i, ch in enumerate(body):
                if ch in "{}" and (i == 0 or body[i - 1] != "\\"):
                    depth += 1 if ch == "{" else -1
                    if depth < 0:  # the box closes before the end: \boxed{1} + \boxed{2}
                        return answer
            return body if depth == 0 else answer
    return answer


def _load(verifiers, name: str, options: dict):
    try:
        return verifiers.get(name, **options)
    except verifiers.VerifierError as exc:
        raise click.ClickException(str(exc)) from None


def _line(verdict) -> str:
    d = verdict.details
    parts = [verdict.reason]
    if d.get("rule"):
        parts.append(f"rule: {d['rule']}")
    for key, label in (("extracted", "extracted"), ("answer_normalized", "answer"),
                       ("reference_normalized", "reference"), ("error", "error"), ("bound", "bound")):
        if d.get(key) is not None:
            parts.append(f"{label}: {d[key]}")
    return "  ".join(parts)


def _rows(path: Path):
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{n}: not JSON ({exc.msg}); each line must be one JSON object")
            if not isinstance(row, dict) or "reference" not in row or not ("answer" in row or "completion" in row):
                raise click.ClickException(f"{path}:{n}: needs \"reference\" and \"answer\" or \"completion\"")
            yield n, row


def _judge(verifier, chunk: list) -> list:
    out = [None] * len(chunk)
    answers = [k for k, (_, row) in enumerate(chunk) if "answer" in row]
    if answers:
        if not hasattr(verifier, "check_batch"):
            raise click.ClickException(f"verifier {verifier.name!r} needs \"completion\" rows, not \"answer\"")
        for k, v in zip(answers, verifier.check_batch([str(chunk[k][1]["answer"]) for k in answers],
                                                      [chunk[k][1]["reference"] for k in answers])):
            out[k] = v
    replies = [k for k in range(len(chunk)) if out[k] is None]
    if replies:
        examples = [SimpleNamespace(id=str(chunk[k][1].get("id", chunk[k][0])), reference=chunk[k][1]["reference"],
                                    meta={"extract": chunk[k][1]["extract"]} if "extract" in chunk[k][1] else {})
                    for k in replies]
        for k, v in zip(replies, verifier.verify_batch([str(chunk[k][1]["completion"]) for k in replies], examples)):
            out[k] = v
    return out


def _verify_file(verifier, path: Path, output: Path) -> None:
    reasons: Counter = Counter()
    labelled = agree = false_pos = false_neg = 0
    rows = list(_rows(path))
    with open(output, "w", encoding="utf-8") as out:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            for (n, row), verdict in zip(chunk, _judge(verifier, chunk)):
                if verdict is None:
                    reasons["not_applicable"] += 1
                    continue
                reasons[verdict.reason] += 1
                record = {"line": n, **({"id": row["id"]} if "id" in row else {}), **verdict.to_dict()}
                if isinstance(row.get("equivalent"), bool):
                    labelled += 1
                    agree += verdict.ok == row["equivalent"]
                    false_pos += verdict.ok and not row["equivalent"]
                    false_neg += row["equivalent"] and not verdict.ok
                    record["label"] = row["equivalent"]
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    total = sum(reasons.values())
    click.echo(f"{total} rows: " + ", ".join(f"{r} {c}" for r, c in reasons.most_common()))
    if labelled:
        click.echo(f"labelled {labelled}: agreement {agree / labelled:.1%}, "
                   f"false positives {false_pos}, false negatives {false_neg}")
    click.echo(f"verdicts written to {output}")
