"""Multi-turn rollouts with tools: any sampler, wrapped, pauses at the end of a tool call, the tool
runs, its output is appended as tokens, and generation continues from the trajectory's token ids.

One trajectory (a `Completion`) after the prompt::

    model tokens ... ```python\\n print(123 * 456)\\n```\\n | ```output\\n 56088\\n```\\n | model tokens ... <eos>
    model_mask: 1 1 ... 1                                     0 0 0 ... 0                      1 1 ... 1

* Token in, token out: the model's tokens are kept exactly as sampled (never decoded and encoded
  again); only the tool's output is tokenised, piece by piece (open marker, body, close marker).
  The next turn's prompt is the prompt's ids + every id so far.
* The sampler stops at the tools' stop strings; the segment is cut after the token that completes
  the call (whatever the sampler generated after it is dropped, so the trajectory is exactly what
  was sampled up to the cut).
* ``max_new_tokens`` bounds the model's tokens over every turn; tool tokens come on top, at most
  ``max_tool_calls`` outputs of at most ``tool_output_tokens`` body tokens each.
* Each trajectory's calls see its own earlier calls (the tool gets them, ``reasoner.tools``); the
  calls of one turn run concurrently over all trajectories.
* ``Completion.text`` is the model's own text only (every model segment, tool outputs left out):
  the verifiers judge that, so a tool output that prints a fake answer or fake markers gains
  nothing. ``Completion.transcript`` has the whole trajectory for the logs.
* Groups stay groups: G trajectories per prompt, in order; with per-prompt seeds each continuation
  gets a seed derived from its prompt's seed, its place in the group and the turn.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import torch

from reasoner.samplers.base import Completion, SamplingParams
from reasoner.tools import Tool, ToolCall

TRUNCATED = "\n[... output truncated]\n"


@dataclass(eq=False)
class _Trajectory:
    prompt: list[int]
    seed: int | None
    member: int  # its place among the prompt's n trajectories
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    model_text: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    since_output: str = ""  # model text since the last tool output: where the next call is looked for
    cells: dict[str, list[str]] = field(default_factory=dict)  # per tool: earlier successful calls
    pending: tuple[Tool, ToolCall] | None = None
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    finish: str | None = None  # set once the trajectory is over

    @property
    def model_tokens(self) -> int:
        return sum(self.mask)


class ToolSampler:
    """A sampler whose completions may call ``tools`` (see the module docstring); same interface as any sampler.

    ``tool_seconds`` and ``tool_calls`` add up the wall time of tool execution and the calls made since
    the last ``take_stats``."""

    def __init__(self, sampler, tokenizer, tools: Sequence[Tool], max_tool_calls: int = 4,
                 tool_output_tokens: int = 256):
        self.inner, self.tokenizer, self.tools = sampler, tokenizer, list(tools)
        self.max_tool_calls, self.tool_output_tokens = max_tool_calls, tool_output_tokens
        self.name, self.pad_id = sampler.name, sampler.pad_id
        self.stop = tuple(dict.fromkeys(s for t in self.tools for s in t.stop))
        self.tool_seconds = 0.0
        self._piece_cache: dict[str, list[int]] = {}

    def __getattr__(self, name):  # engine attributes (sync_seconds, start_seconds ...) are the inner sampler's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def take_tool_seconds(self) -> float:
        seconds, self.tool_seconds = self.tool_seconds, 0.0
        return seconds

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.inner.load_weights(named_tensors)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            for tool in self.tools:
                tool.close()

    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        seeds = params.prompt_seeds
        trajs = [_Trajectory(list(p), None if seeds is None else seeds[i], j) for i, p in enumerate(prompts)
                 for j in range(n)]
        first = self.inner.generate(prompts, n, replace(params, stop=self.stop if self.max_tool_calls else ()))
        for t, c in zip(trajs, [c for g in first for c in g]):
            self._absorb(t, c, params.max_new_tokens)
        turn = 0
        while True:
            self._run_calls([t for t in trajs if t.pending is not None])
            active = [t for t in trajs if t.finish is None]
            if not active:
                break
            turn += 1
            for may_call in (True, False):  # those with calls left stop at a call's end; the others run on
                group = [t for t in active if (t.calls < self.max_tool_calls) == may_call]
                if not group:
                    continue
                budget = max(params.max_new_tokens - t.model_tokens for t in group)
                sub = replace(params, max_new_tokens=budget, stop=self.stop if may_call else (),
                              prompt_seeds=None if seeds is None else tuple(
                                  _continuation_seed(t.seed, t.member, turn) for t in group))
                out = self.inner.generate([t.prompt + t.ids for t in group], 1, sub)
                for t, [c] in zip(group, out):
                    self._absorb(t, c, params.max_new_tokens - t.model_tokens)
        return [[self._completion(t) for t in trajs[i * n:(i + 1) * n]] for i in range(len(prompts))]

    # ---- one segment ---------------------------------------------------------------------------

    def _absorb(self, t: _Trajectory, c: Completion, budget: int) -> None:
        """Append a sampled segment (at most ``budget`` model tokens); cut it after a tool call if there is one."""
        ids, logprobs = c.token_ids[:budget], c.logprobs[:budget]
        cut = self._find_call(t, ids) if t.calls < self.max_tool_calls else None
        if cut is not None:
            k, tool, call = cut
            ids, logprobs = ids[:k], logprobs[:k]
            t.pending = (tool, call)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        t.ids += ids
        t.logprobs += logprobs
        t.mask += [1] * len(ids)
        t.model_text.append(text)
        t.transcript.append(text)
        t.since_output += text
        left = budget - len(ids)
        if cut is not None:
            if left <= 0:  # no model tokens left to read the output with: the call is not run
                t.pending, t.finish = None, "length"
            return
        if left <= 0 and c.finish_reason != "stop":
            t.finish = "length"
        elif c.finish_reason == "stop":
            t.finish = "stop"
        elif c.finish_reason == "length" and len(c.token_ids) < budget:
            t.finish = "length"  # the engine's own limit (max_model_len)
        elif not ids:
            t.finish = c.finish_reason if c.finish_reason != "stop_string" else "stop"
        # else: stopped on a stop string that is not a complete call: go on

    def _find_call(self, t: _Trajectory, ids: list[int]) -> tuple[int, Tool, ToolCall] | None:
        """(tokens up to the one completing the first call, its tool, the call) in this segment, or None."""
        text = t.since_output + self.tokenizer.decode(ids, skip_special_tokens=True)
        if not any(tool.find(text) for tool in self.tools):
            return None
        for k in range(1, len(ids) + 1):
            text = t.since_output + self.tokenizer.decode(ids[:k], skip_special_tokens=True)
            for tool in self.tools:
                call = tool.find(text)
                if call is not None:
                    return k, tool, call
        return None

    # ---- tool calls ----------------------------------------------------------------------------

    def _run_calls(self, waiting: list[_Trajectory]) -> None:
        if not waiting:
            return
        start = time.perf_counter()
        for tool in self.tools:
            mine = [t for t in waiting if t.pending[0] is tool]
            if not mine:
                continue
            histories = [t.cells.get(tool.name, []) + [t.pending[1].code] for t in mine]
            try:
                results = tool.run_many(histories)
            except Exception as exc:  # noqa: BLE001 - a broken tool plugin is tool output, never a crash
                from reasoner.tools import ToolResult

                results = [ToolResult(f"ToolError: {type(exc).__name__}: {exc}\n", True)] * len(mine)
            for t, result in zip(mine, results):
                self._append_output(t, tool, result)
        self.tool_seconds += time.perf_counter() - start

    def _append_output(self, t: _Trajectory, tool: Tool, result) -> None:
        _, call = t.pending
        t.pending = None
        t.calls += 1
        t.errors += int(result.error)
        t.seconds += result.seconds
        if not result.error:
            t.cells.setdefault(tool.name, []).append(call.code)
        body = result.output[:self.tool_output_tokens * 16]  # a bound before tokenising megabytes
        body_ids = self._tokens(body) if body else []
        if len(body_ids) > self.tool_output_tokens or len(body) < len(result.output):
            body_ids = body_ids[:self.tool_output_tokens] + self._piece(TRUNCATED)
        elif body and not body.endswith("\n"):
            body_ids = body_ids + self._piece("\n")
        opening = tool.output_open if t.since_output.endswith("\n") else "\n" + tool.output_open
        ids = self._piece(opening) + body_ids + self._piece(tool.output_close)
        t.ids += ids
        t.logprobs += [0.0] * len(ids)
        t.mask += [0] * len(ids)
        t.transcript.append(self.tokenizer.decode(ids, skip_special_tokens=True))
        t.since_output = ""

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _piece(self, text: str) -> list[int]:
        if text not in self._piece_cache:
            self._piece_cache[text] = self._tokens(text)
        return self._piece_cache[text]

    def _completion(self, t: _Trajectory) -> Completion:
        return Completion(t.ids, t.logprobs, "".join(t.model_text), t.finish or "length",
                          model_mask=t.mask if t.calls else None, transcript="".join(t.transcript),
                          tool_calls=t.calls, tool_errors=t.errors, tool_seconds=t.seconds)


def _continuation_seed(seed: int, member: int, turn: int) -> int:
    return random.Random(f"{seed}-{member}-{turn}").getrandbits(31)


def tool_room(spec: str | None, max_tool_calls: int, tool_output_tokens: int) -> int:
    """Context the tool outputs may add to a sequence (for the engine's ``max_model_len``)."""
    from reasoner.tools import parse_names

    return max_tool_calls * (tool_output_tokens + 32) if parse_names(spec) else 0


def with_tools(sampler, tokenizer, spec: str | None, options: dict | None, max_tool_calls: int,
               tool_output_tokens: int):
    """``sampler`` itself without tools; else a `ToolSampler` over it with the tools of ``spec``."""
    from reasoner.tools import load, parse_names

    names = parse_names(spec)
    if not names:
        return sampler
    tools = [load(name, (options or {}).get(name)) for name in names]
    return ToolSampler(sampler, tokenizer, tools, max_tool_calls, tool_output_tokens)


def tool_metrics(completions: Sequence[Completion]) -> dict[str, float]:
    """Tool use of some completions: calls per completion, calls that failed, share that used a tool."""
    n = max(len(completions), 1)
    calls = sum(c.tool_calls for c in completions)
    return {"tool/calls_per_completion": calls / n, "tool/errors": float(sum(c.tool_errors for c in completions)),
            "tool/used_frac": sum(c.tool_calls > 0 for c in completions) / n,
            "tool/exec_seconds": sum(c.tool_seconds for c in completions)}
