"""What a parsed answer can be, besides a sympy expression: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seq:
    """A sequence of items. ``kind``: tuple (parentheses), list (bare commas), set (braces)."""
    kind: str
    items: tuple


@dataclass(frozen=True)
class Interval:
    lo: object
    hi: object
    left_open: bool
    right_open: bool

    def __str__(self) -> str:
        return f"{'(' if self.left_open else '['}{self.lo}, {self.hi}{')' if self.right_open else ']'}"


@dataclass(frozen=True)
class Union:
    parts: tuple


@dataclass(frozen=True)
class Matrix:
    rows: tuple  # tuple of tuples of sympy expressions


@dataclass(frozen=True)
class Relation:
    """``a = b`` (or a chain ``a < b <= c``): ``ops[i]`` sits between ``sides[i]`` and ``sides[i+1]``."""
    ops: tuple
    sides: tuple


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Choice:
    letter: str
    value: object = None  # the value an AMC-style choice states: \\textbf{(C)}\\ 10


@dataclass(frozen=True)
class Answer:
    value: object
    marks: frozenset = frozenset()
