"""Datasets as `Example`s: what to ask, what the right answer is, which verifier judges it.

A *task spec* is a string a user types: ``NAME`` or ``NAME:ARG`` with ``ARG`` either a path
or ``key=value,key=value`` options, e.g. ``arithmetic``, ``arithmetic:digits=2,ops=+-``,
``gsm8k:../shared/data/gsm8k_test.jsonl``. Task loaders are plugins found through the
entry-point group ``reasoner.tasks`` (the built-ins register there too; ``reasoner.plugins``
loads them, ``REASONER_LOAD_PLUGINS`` limits which third-party ones load); a loader is a
callable ``load(arg: str | None, split: str) -> Task``, optionally with a keyword ``strict``
(a malformed row is an error naming its line instead of a skipped row with a warning).

A *mixture* is several specs joined by `` + ``, each with an optional weight after a last
``:``: ``arithmetic:0.5 + code:0.5`` (``reasoner train --task arithmetic:0.5 --task code:0.5``);
see `mixture`.

Benchmarks (``gsm8k``, ``math500``, ``aime24``, ``amc23``, ``humaneval``) find their data
without an ARG: see ``reasoner.tasks.sources``.

This package knows nothing about training or about how a verifier decides.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from reasoner import plugins

ENTRY_POINT_GROUP = "reasoner.tasks"


@dataclass(frozen=True)
class Example:
    """One problem. ``prompt`` is a user message (str) or a full chat (list of messages)."""

    id: str
    prompt: str | list[dict[str, str]]
    reference: Any
    verifier: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Task(Sequence[Example]):
    """A named, sized, indexable collection of examples."""

    def __init__(self, name: str, examples: Sequence[Example], description: str = "", split: str | None = None):
        self.name = name
        self.examples = list(examples)
        self.description = description
        self.split = split  # the split served, or None when the source has no splits (one file)
        ids = [ex.id for ex in self.examples]
        if len(set(ids)) != len(ids):
            raise ValueError(f"task {name!r} has duplicate example ids")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):  # type: ignore[override]
        return self.examples[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, {len(self)} examples)"


class TaskError(ValueError):
    """A task spec or data file the user gave cannot be used; the message says why and how to fix it."""


def available() -> dict[str, str]:
    """Names of installed task loaders mapped to their one-line description."""
    out = {}
    for name, ep in sorted(plugins.find(ENTRY_POINT_GROUP).items()):
        try:
            doc = (ep.load().__doc__ or "").strip().splitlines()
        except Exception as exc:  # a broken plugin must not hide the others
            doc = [f"(failed to load: {exc})"]
        out[name] = doc[0] if doc else ""
    return out


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, sep, arg = spec.partition(":")
    return name.strip(), (arg if sep else None)


def parse_options(arg: str | None) -> dict[str, str]:
    """``"digits=2,ops=+-"`` -> ``{"digits": "2", "ops": "+-"}``."""
    if not arg:
        return {}
    out = {}
    for part in arg.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise TaskError(f"task option {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def checked_options(task: str, arg: str | None, ints: tuple[str, ...], texts: tuple[str, ...]) -> dict:
    """``parse_options`` for a generated task: unknown keys refused (with a did-you-mean), the
    ``ints`` converted to integers."""
    import difflib

    options: dict = parse_options(arg)
    valid = sorted({*ints, *texts})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TaskError(f"{task}: unknown option(s) {', '.join(map(repr, unknown))}{hint}; "
                        f"valid options: {', '.join(valid)}")
    for key in ints:
        if key in options:
            try:
                options[key] = int(options[key])
            except ValueError:
                raise TaskError(f"{task}: {key} must be an integer (got {options[key]!r})") from None
    return options


MIXTURE_SEPARATOR = " + "


def mixture(spec: str) -> list[tuple[str, str, float]]:
    """``(label, task spec, weight)`` of each part of a mixture spec (one part for a plain spec).

    A part's weight is a trailing ``:NUMBER`` (``code:0.5``, ``arithmetic:ops=+-:2``; default 1);
    labels are the task names, numbered when a name comes twice (``arithmetic``, ``arithmetic-2``)."""
    parts = [p.strip() for p in spec.split(MIXTURE_SEPARATOR)]
    out, seen = [], Counter()
    for part in parts:
        head, sep, tail = part.rpartition(":")
        weight = 1.0
        try:
            if sep and tail.strip():
                weight, part = float(tail), head
        except ValueError:
            pass
        if not part or not weight > 0 or weight != weight or weight == float("inf"):
            raise TaskError(f"task mixture {spec!r}: each part needs a task and a positive weight (got {part!r})")
        name = parse_spec(part)[0]
        seen[name] += 1
        out.append((name if seen[name] == 1 else f"{name}-{seen[name]}", part, weight))
    return out


def load(spec: str, split: str = "train", strict: bool = False) -> Task:
    """Load a task from its spec string (see the module docstring).

    ``strict`` makes a malformed row an error (evaluation wants every row scored); it reaches
    the loaders that accept it."""
    name, arg = parse_spec(spec)
    loaders = plugins.find(ENTRY_POINT_GROUP)
    if name not in loaders:
        known = ", ".join(sorted(loaders)) or "none installed"
        hint = plugins.unknown_hint(ENTRY_POINT_GROUP, name) or "; is the package installed with `pip install -e .`?"
        raise TaskError(f"unknown task {name!r} (known: {known}){hint}")
    loader = loaders[name].load()
    try:
        takes_strict = "strict" in inspect.signature(loader).parameters
    except (TypeError, ValueError):
        takes_strict = False
    return loader(arg, split=split, strict=strict) if takes_strict else loader(arg, split=split)


__all__ = ["Example", "Task", "TaskError", "available", "load", "parse_spec", "parse_options", "mixture"]
