"""Seeded arithmetic problems with exact integer answers: the embedded default task.

Problems are ``a op b`` with operands in ``[min_value, max_value]``, asked as a bare
expression ("What is 7 + 5?") or as a short word problem ("Mia has 7 shells and finds 5
more..."). Subtraction never goes below zero and division is always exact, so every answer
is a non-negative integer.

Splits are disjoint by construction: the ``test`` split draws its problems first, and the
``train`` split never contains a problem (the triple ``a, op, b``) that the test split holds,
whatever its wording. Both splits are pure functions of the options and the seed.

Options (``arithmetic:key=value,...``):

* ``ops`` — operators to draw from, any of ``+-*/`` (default ``+-``)
* ``min_value``, ``max_value`` — operand range (default 0..20)
* ``style`` — ``number``, ``word`` or ``mixed`` (default ``mixed``)
* ``size`` — examples in the split (default: train 5000, test 200)
* ``test_size`` — problems reserved for the test split (default 200)
* ``seed`` — generator seed (default 0)
* ``instruction`` — sentence appended to every question (default asks for just the number)
"""

from __future__ import annotations


import random

from reasoner.tasks import Example, Task, TaskError, checked_options

DEFAULT_INSTRUCTION = "Answer with just the number."
NAMES = ["Mia", "Noah", "Ava", "Liam", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Yuki", "Ines"]
THINGS = ["apples", "marbles", "stickers", "books", "shells", "coins", "pencils", "cards", "eggs", "stamps"]


def _word(rng: random.Random, a: int, op: str, b: int) -> str:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    if op == "+":
        return rng.choice([
            f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?",
            f"There are {a} {thing} in a box and {b} {thing} on the table. How many {thing} are there in all?",
        ])
    if op == "-":
        return rng.choice([
            f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have left?",
            f"A jar holds {a} {thing}. {name} takes out {b}. How many {thing} are still in the jar?",
        ])
    if op == "*":
        return rng.choice([
            f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} is that in total?",
            f"There are {a} rows of {thing} with {b} in each row. How many {thing} are there?",
        ])
    return rng.choice([
        f"{name} shares {a} {thing} equally among {b} friends. How many {thing} does each friend get?",
        f"{a} {thing} are packed into groups of {b}. How many groups are there?",
    ])


def _number(rng: random.Random, a: int, op: str, b: int) -> str:
    sym = {"+": "+", "-": "-", "*": "×", "/": "÷"}[op]
    return rng.choice([f"What is {a} {sym} {b}?", f"Compute {a} {sym} {b}.", f"{a} {sym} {b} = ?"])


def _draw(rng: random.Random, ops: str, lo: int, hi: int) -> tuple[int, str, int, int]:
    op = rng.choice(ops)
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "-" and b > a:
        a, b = b, a
    if op == "/":
        b = max(b, 1)
        a = b * rng.randint(max(lo, 0), hi)
        return a, op, b, a // b
    return a, op, b, {"+": a + b, "-": a - b, "*": a * b}[op]


def _space_size(ops: str, lo: int, hi: int) -> int:
    n = hi - lo + 1
    per_op = {"+": n * n, "-": n * (n + 1) // 2, "*": n * n, "/": max(hi, 1) * n}
    return sum(per_op[o] for o in set(ops))


def generate(split: str = "train", ops: str = "+-", min_value: int = 0, max_value: int = 20,
             style: str = "mixed", size: int | None = None, test_size: int = 200, seed: int = 0,
             instruction: str = DEFAULT_INSTRUCTION) -> Task:
    if not ops or set(ops) - set("+-*/"):
        raise TaskError(f"arithmetic: ops must be made of + - * / (got {ops!r})")
    if style not in ("number", "word", "mixed"):
        raise TaskError(f"arithmetic: style must be number, word or mixed (got {style!r})")
    if not 0 <= min_value <= max_value:
        raise TaskError(f"arithmetic: need 0 <= min_value <= max_value (got {min_value}..{max_value})")
    if split not in ("train", "test"):
        raise TaskError(f"arithmetic: split must be train or test (got {split!r})")
    space = _space_size(ops, min_value, max_value)
    if test_size >= space:
        raise TaskError(f"arithmetic: only {space} distinct problems for test_size={test_size}; widen the range")

    rng = random.Random(f"arithmetic-test-{seed}")
    test: dict[tuple[int, str, int], int] = {}
    while len(test) < test_size:
        a, op, b, ans = _draw(rng, ops, min_value, max_value)
        test.setdefault((a, op, b), ans)

    if split == "test":
        items = list(test.items())[: size or test_size]
        rng = random.Random(f"arithmetic-test-words-{seed}")
    else:
        size = 5000 if size is None else size
        rng = random.Random(f"arithmetic-train-{seed}")
        items = []
        while len(items) < size:
            a, op, b, ans = _draw(rng, ops, min_value, max_value)
            if (a, op, b) not in test:
                items.append(((a, op, b), ans))

    examples = []
    for i, ((a, op, b), ans) in enumerate(items):
        wording = style if style != "mixed" else rng.choice(["number", "word"])
        question = (_word if wording == "word" else _number)(rng, a, op, b)
        prompt = f"{question} {instruction}".strip() if instruction else question
        examples.append(Example(id=f"arith-{split}-{i}", prompt=prompt, reference=str(ans), verifier="math",
                                meta={"extract": ["boxed", "answer_is", "last_number"], "a": a, "op": op, "b": b}))
    return Task(f"arithmetic[{split}]", examples, description="seeded arithmetic problems", split=split)


_INT_OPTIONS = ("min_value", "max_value", "size", "test_size", "seed")


def load(arg: str | None = None, split: str = "train") -> Task:
    """Seeded arithmetic problems (numbers and word problems), exact answers; the default task."""
    options = checked_options("arithmetic", arg, _INT_OPTIONS, ("ops", "style", "instruction"))
    return generate(split=split, **options)
