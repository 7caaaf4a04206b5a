"""Evaluation: generate completions for benchmark problems and score them with each problem's verifier.

* ``run(cfg)`` is ``reasoner eval``: for every task, sample ``samples`` completions per problem
  (greedy or at a temperature), judge each with the problem's own verifier (``math`` with
  sympy, ``code`` in the Docker sandbox, any plugin), and report pass@k, maj@k and the
  pass@1 standard error (``reasoner.scoring``). It writes ``summary.json`` and one
  ``<task>.jsonl`` per task (per problem: prompt, completions, answers, verdicts, reasons).
* ``evaluate(...)`` is the greedy held-out accuracy the trainer logs before, during and after
  training; it scores through the same ``scoring.grade``.
* ``compare(run_a, run_b)`` is ``reasoner eval --compare``: per-task deltas of pass@1 with a
  paired bootstrap confidence interval over the problems both runs scored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import click

from reasoner import tasks
from reasoner import verifiers
from reasoner import scoring
from reasoner.config import ConfigError
from reasoner.eval_config import EvalConfig
from reasoner.prompts import encode_prompts
from reasoner.rewards import TASK, Rewarder
from reasoner.samplers import Sampler, SamplingParams, make_sampler
from reasoner.samplers.multiturn import tool_metrics, tool_room, with_tools
from reasoner.tasks import sources

log = logging.getLogger(__name__)


class EvalError(click.ClickException):
    """An evaluation that cannot give a trustworthy number; the message says why and what to do."""


@dataclass
class EvalResult:
    accuracy: float
    n: int
    seconds: float
    records: list[dict] = field(default_factory=list)


def evaluate(sampler: Sampler, tokenizer, examples: Sequence, judge: Rewarder, max_new_tokens: int,
             system_prompt: str | None = None, batch_size: int = 64, progress=None) -> EvalResult:
    """Greedy pass@1 of ``examples``. ``judge`` must hold the ``task`` term (``Rewarder({"task": 1})``);
    ``progress`` is an optional callable(n_done)."""
    if TASK not in judge.weights:
        raise ValueError("evaluate needs a judge with the 'task' reward term")
    start = time.perf_counter()
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    records, correct = [], 0
    for i in range(0, len(examples), batch_size):
        chunk = list(examples[i:i + batch_size])
        prompt_ids = encode_prompts(tokenizer, [ex.prompt for ex in chunk], system_prompt)
        groups = sampler.generate(prompt_ids, 1, params)
        for record in scoring.grade(chunk, [[g[0].text] for g in groups], judge):
            sample = record["completions"][0]
            correct += sample["correct"]
            records.append({"id": record["id"], "completion": sample["text"], "correct": sample["correct"],
                            "answer": sample["answer"], "reason": sample["reason"]})
        for record, g in zip(records[-len(chunk):], groups):
            if g[0].transcript is not None:  # with tools: the whole trajectory and its calls
                record.update(transcript=g[0].transcript, tool_calls=g[0].tool_calls, tool_errors=g[0].tool_errors)
        if progress:
            progress(len(chunk))
    n = len(records)
    return EvalResult(correct / n if n else 0.0, n, time.perf_counter() - start, records)


# --- reasoner eval -----------------------------------------------------------------------------

def label_of(task: tasks.Task, taken: set[str]) -> str:
    """A file-name-safe label for a task's results (``gsm8k``, ``jsonl-mine`` for jsonl:mine.jsonl), unique in a run."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", re.sub(r"\.jsonl(\.gz)?\b", "", task.name)).strip("-") or "task"
    label, i = base, 2
    while label in taken:
        label, i = f"{base}-{i}", i + 1
    taken.add(label)
    return label


def load_tasks(cfg: EvalConfig) -> list[tuple[str, list]]:
    """``(label, examples)`` per task spec: test split, strict rows, --limit and --prompt-template applied."""
    if not cfg.tasks:
        known = ", ".join(sorted(tasks.available()))
        raise ConfigError(f"name at least one benchmark with --task (known: {known})")
    if cfg.data_dir:
        os.environ[sources.ENV] = os.pathsep.join(p for p in (cfg.data_dir, os.environ.get(sources.ENV)) if p)
    out, taken = [], set()
    for spec in cfg.tasks:
        try:
            task = tasks.load(spec, split="test", strict=True)
        except tasks.TaskError as exc:
            raise ConfigError(str(exc)) from None
        examples = list(task)[: cfg.limit or None]
        if cfg.prompt_template:
            examples = [_templated(ex, cfg.prompt_template, spec) for ex in examples]
        out.append((label_of(task, taken), examples))
    return out


def _templated(ex: tasks.Example, template: str, spec: str) -> tasks.Example:
    question = ex.meta.get("question", ex.prompt if isinstance(ex.prompt, str) else None)
    if not isinstance(question, str):
        raise ConfigError(f"--prompt-template: task {spec!r} has chat prompts without a question text to put in it")
    return tasks.Example(ex.id, template.replace("{question}", question), ex.reference, ex.verifier, ex.meta)


def run(cfg: EvalConfig, show_progress: bool = True) -> dict:
    """``reasoner eval``: generate, score, report; returns the summary (also written to --output)."""
    import torch
    from tqdm.auto import tqdm

    from reasoner import models

    wall = time.perf_counter()
    cfg.validate()
    loaded = load_tasks(cfg)
    judge = Rewarder({TASK: 1.0})
    try:
        for name in sorted({ex.verifier for _, examples in loaded for ex in examples}):
            judge.verifier(name)  # an unknown verifier fails now, before a model is loaded
    except verifiers.VerifierError as exc:
        raise ConfigError(str(exc)) from None
    model_dir = models.resolve(cfg.model)
    tokenizer = models.load_tokenizer(model_dir)
    prompt_ids = [encode_prompts(tokenizer, [ex.prompt for ex in examples], cfg.system_prompt) for _, examples in loaded]
    longest = max(len(p) for ids in prompt_ids for p in ids)
    torch.manual_seed(cfg.seed)
    sampler = make_sampler(cfg.sampler, model_dir, tokenizer, dtype=cfg.dtype, seed=cfg.seed,
                           max_model_len=longest + cfg.max_new_tokens
                           + tool_room(cfg.tools, cfg.max_tool_calls, cfg.tool_output_tokens),
                           gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, kv_cache_gib=cfg.vllm_kv_cache_gib,
                           log_path=Path(cfg.output) / "vllm-server.log" if cfg.output else None)
    sampler = with_tools(sampler, tokenizer, cfg.tools, cfg.tool_options, cfg.max_tool_calls, cfg.tool_output_tokens)
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                            top_p=cfg.top_p if cfg.temperature > 0 else 1.0)
    results: dict[str, dict] = {}
    bar = tqdm(total=sum(len(ex) for _, ex in loaded), unit="problem", disable=not show_progress, dynamic_ncols=True)
    try:
        for (label, examples), ids in zip(loaded, prompt_ids, strict=True):
            bar.set_description(label)
            results[label] = _run_task(sampler, judge, examples, ids, cfg, params, bar)
    finally:
        bar.close()
        sampler.close()
        judge.close()
    summary = {
        "model": cfg.model, "model_dir": model_dir, "sampler": sampler.name,
        "tasks": {label: r["metrics"] for label, r in results.items()},
        "wall_seconds": round(time.perf_counter() - wall, 2), "settings": asdict(cfg),
    }
    if cfg.output:
        write(Path(cfg.output), summary, {label: r["records"] for label, r in results.items()})
    return summary


def _run_task(sampler, judge: Rewarder, examples: list, prompt_ids: list, cfg: EvalConfig, params: SamplingParams,
              bar) -> dict:
    records, t_gen, t_score, tokens, completions = [], 0.0, 0.0, 0, []
    for start in range(0, len(examples), cfg.batch_size):
        chunk, ids = examples[start:start + cfg.batch_size], prompt_ids[start:start + cfg.batch_size]
        t0 = time.perf_counter()
        groups = sampler.generate(ids, cfg.samples, params)
        t1 = time.perf_counter()
        extra = [[{"finish_reason": c.finish_reason, "tokens": len(c.token_ids),
                   **({"tool_calls": c.tool_calls, "tool_errors": c.tool_errors, "transcript": c.transcript}
                      if cfg.tools else {})} for c in g] for g in groups]
        completions += [c for g in groups for c in g]
        records.extend(scoring.grade(chunk, [[c.text for c in g] for g in groups], judge, extra))
        t2 = time.perf_counter()
        t_gen, t_score = t_gen + t1 - t0, t_score + t2 - t1
        tokens += sum(len(c.token_ids) for g in groups for c in g)
        bar.update(len(chunk))
    regrade_unjudged(examples, records, judge)
    check_judged(records)
    metrics = scoring.metrics(records)
    samples = [s for r in records for s in r["completions"]]
    metrics.update({
        "truncated": sum(s["finish_reason"] == "length" for s in samples) / len(samples),
        "tokens_mean": tokens / len(samples),
        "seconds": {"generate": round(t_gen, 2), "score": round(t_score, 2),
                    **({"tool": round(sampler.take_tool_seconds(), 2)} if cfg.tools else {})},
        **({k.split("/")[1]: round(v, 4) for k, v in tool_metrics(completions).items()} if cfg.tools else {}),
        "problems_per_s": len(records) / max(t_gen + t_score, 1e-9),
        "tokens_per_s": tokens / max(t_gen, 1e-9),
    })
    return {"metrics": metrics, "records": records}


REGRADE_ATTEMPTS = 2    # more judgements of a sample the sandbox could not judge
REGRADE_WAIT = 6.0      # seconds before each: longer than the pool's probe of a host out of rotation


def _unjudged(records: list[dict]) -> list[tuple[int, int]]:
    return [(i, j) for i, r in enumerate(records) for j, s in enumerate(r["completions"])
            if s["details"].get("sandbox_error")]


def regrade_unjudged(examples: Sequence, records: list[dict], judge: Rewarder, attempts: int = REGRADE_ATTEMPTS,
                     wait: float = REGRADE_WAIT) -> int:
    """``records[i]`` being the record of ``examples[i]``, judge again the samples whose judgement failed for a reason that is not theirs (the sandbox
    lost a container or a host, or could not start one), up to ``attempts`` more times, ``wait``
    seconds apart. Updates ``records`` in place; returns how many are still unjudged."""
    for _ in range(attempts):
        todo = _unjudged(records)
        if not todo:
            return 0
        log.warning("the sandbox could not judge %d completion(s) (%s); judging them again in %g s", len(todo),
                    records[todo[0][0]]["completions"][todo[0][1]]["details"].get("error", "sandbox_error"), wait)
        time.sleep(wait)
        again = scoring.grade([examples[i] for i, _ in todo],
                              [[records[i]["completions"][j]["text"]] for i, j in todo], judge)
        for (i, j), fresh in zip(todo, again, strict=True):
            old = records[i]["completions"][j]
            new = fresh["completions"][0]
            records[i]["completions"][j] = {**old, **{k: new[k] for k in ("answer", "key", "correct", "reward",
                                                                          "reason", "details")}}
            records[i]["correct"] = sum(s["correct"] for s in records[i]["completions"])
    return len(_unjudged(records))


def check_judged(records: list[dict]) -> None:
    """A sample the sandbox could not judge (even judged again) is not a wrong answer: stop
    instead of reporting a low score, with one line that says why."""
    failed = [records[i]["completions"][j] for i, j in _unjudged(records)]
    if failed:
        total = sum(len(r["completions"]) for r in records)
        error = " ".join(str(failed[0]["details"].get("error", failed[0]["reason"])).split())[:300]
        raise EvalError(f"the sandbox could not judge {len(failed)} of {total} completion(s), even judged again "
                        f"({error}); run `reasoner sandbox check` for the fix")
    errors = [s for r in records for s in r["completions"] if s["reason"] == "verifier_error"]
    if errors:
        log.warning("%d completion(s) got verifier_error (scored 0), e.g. %s", len(errors),
                    errors[0]["details"].get("error"))


def write(out: Path, summary: dict, records: dict[str, list[dict]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for label, rows in records.items():
        with open(out / f"{label}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))


def table(summary: dict, ks: Sequence[int]) -> str:
    """The on-screen table: one row per task, pass@1 with its standard error, pass@k and maj@k."""
    has_maj = any("maj@k" in m for m in summary["tasks"].values())
    head = ["task", "problems", "n", "pass@1"] + [f"pass@{k}" for k in ks if k > 1]
    head += [f"maj@{k}" for k in ks if k > 1] if has_maj else []
    head += ["answered", "truncated", "problems/s"]
    rows = [head]
    for label, m in summary["tasks"].items():
        pk, mk = m["pass@k"], m.get("maj@k")
        row = [label, str(m["problems"]), str(m["samples"]), f"{100 * pk[1]:.1f} ± {100 * m['pass@1_stderr']:.1f}"]
        row += [f"{100 * pk[k]:.1f}" for k in ks if k > 1]
        if has_maj:
            row += [f"{100 * mk[k]:.1f}" if mk else "-" for k in ks if k > 1]
        row += [f"{100 * m['answered']:.0f}%" if "answered" in m else "-", f"{100 * m['truncated']:.0f}%",
                f"{m['problems_per_s']:.2f}"]
        rows.append(row)
    return _grid(rows)


def _grid(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)


# --- reasoner eval --compare -------------------------------------------------------------------

def _read_run(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per task label, per problem id: that problem's pass@1 (share of its samples judged correct)."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{run_dir} is not an evaluation output: no summary.json (make one with reasoner eval --output)")
    summary = json.loads(summary_path.read_text())
    out = {}
    for label in summary.get("tasks", {}):
        path = run_dir / f"{label}.jsonl"
        if not path.is_file():
            raise ConfigError(f"{path} is missing: summary.json lists task {label!r} but its per-problem file is gone")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[label] = {str(r["id"]): r["correct"] / r["samples"] for r in rows}
    return out


def compare(run_a: str | Path, run_b: str | Path, resamples: int = 10_000, seed: int = 0) -> list[dict]:
    """Per task both runs scored: pass@1 of each, delta (B - A) and its paired bootstrap 95% CI on shared ids."""
    a, b = _read_run(Path(run_a)), _read_run(Path(run_b))
    rows = []
    for label in [t for t in a if t in b]:
        ids = sorted(set(a[label]) & set(b[label]))
        if not ids:
            continue
        stats = scoring.paired_bootstrap([a[label][i] for i in ids], [b[label][i] for i in ids], resamples, seed)
        rows.append({"task": label, "only_a": len(a[label]) - len(ids), "only_b": len(b[label]) - len(ids), **stats})
    if not rows:
        raise ConfigError(f"{run_a} and {run_b} share no task with common problem ids (tasks: {', '.join(a) or 'none'} "
                          f"vs {', '.join(b) or 'none'}); compare runs of the same benchmark")
    return rows


def compare_table(rows: list[dict]) -> str:
    head = ["task", "problems", "A pass@1", "B pass@1", "delta", "95% CI", "p"]
    lines = [head]
    for r in rows:
        lines.append([r["task"], str(r["n"]), f"{100 * r['mean_a']:.1f}", f"{100 * r['mean_b']:.1f}",
                      f"{100 * r['delta']:+.1f}", f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]",
                      f"{r['p']:.3f}"])
    notes = [f"{r['task']}: compared on the {r['n']} problems both runs scored "
             f"({r['only_a']} only in A, {r['only_b']} only in B)" for r in rows if r["only_a"] or r["only_b"]]
    return "\n".join([_grid(lines), *notes])
