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
@click.option("-r", "--reference", help="Reference answer (one-pair mode).")
@click.option("-a", "--answer", help="Answer to judge, as written (one-pair mode; no extraction).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where FILE mode writes verdicts  [default: FILE.verdicts.jsonl]")
@click.option("--strategies", help="Answer extraction for completions, e.g. 'boxed' or 'boxed,hash,answer_is,last_number'.")
@click.option("--rel-tol", type=float, default=1e-6, show_default=True,
              help="Relative tolerance where a decimal is involved: |a - r| <= rel_tol * |r| (0: exact).")
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds per check before a 'timeout' verdict.")
@click.option("--workers", type=int, default=2, show_default=True, help="Check processes (0: check in this process).")
def verify(target, reference, answer, output, strategies, rel_tol, timeout, workers):
    """Judge math answers: one pair (TARGET is the verifier, `math`) or a JSONL FILE of them.

    \b
    One pair; exit status 0 when the answer is correct, 1 when it is not:
      reasoner verify math --reference '\\frac12' --answer '0.5'
      reasoner verify math -r '[2,5)' -a '2 \\le x < 5'
    \b
    Many: each line of FILE is a JSON object with "reference" and either "completion" (a model
    reply; the answer is extracted) or "answer" (taken as written); optional "id", "extract" (the
    extraction strategies for that row) and "equivalent" (a true/false label: the summary then
    reports agreement and false positives):
      reasoner verify tests/data/math_pairs.jsonl -o /tmp/verdicts.jsonl
    """
    from reasoner import verifiers

    options = {"rel_tol": rel_tol, "timeout": timeout, "workers": workers}
    if strategies:
        options["strategies"] = strategies
    path = Path(target)
    if path.suffix == ".jsonl" or path.is_file():
        if reference is not None or answer is not None:
            raise click.ClickException("--reference/--answer are for one pair; FILE mode reads them from the file")
        if not path.is_file():
            raise click.ClickException(f"no such file: {path}")
        verifier = _load(verifiers, "math", options)
        try:
            _verify_file(verifier, path, output or path.with_suffix(".verdicts.jsonl"))
        finally:
            verifier.close()
        return
    if reference is None or answer is None:
        raise click.ClickException(f"give --reference and --answer to check one pair with {target!r}, "
                                   f"or a .jsonl FILE (e.g. reasoner verify {target} -r '\\frac12' -a 0.5)")
    verifier = _load(verifiers, target, options)
    try:
        if not hasattr(verifier, "check"):
            raise click.ClickException(f"verifier {target!r} cannot compare an answer with a reference")
        verdict = verifier.check(answer, reference)
    finally:
        verifier.close()
    click.echo(_line(verdict))
    raise SystemExit(0 if verdict.ok else 1)


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
