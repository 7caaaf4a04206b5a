"""Seeded function-writing problems with hidden tests: the bundled code task (needs no download).

Each problem asks for one Python function, e.g. "Write a Python function `multiply(n)` that
returns n multiplied by 7", shows one example call, and asks for the function in a fenced
```` ```python ```` block. It is judged by the ``code`` verifier in the Docker sandbox against
hidden tests: ``assert`` lines whose expected values a reference implementation computed on
seeded inputs (other inputs than the prompt's example). The reference is the code verifier's
``{"tests": "assert f(...) == ...\\n...", "entry_point": "f"}``.

A problem is a *template* (a family, a level, a function to write) with *parameters* (the 7 in
"multiplied by 7", the letter to count, the suffix to add). The splits are disjoint by problem:
the ``test`` split draws its (template, parameters) pairs first and the ``train`` split never
holds one of them, whatever its test inputs. Both are pure functions of the options and the seed.

Families: ``numbers``, ``strings``, ``lists``, ``dicts``, ``algorithms``. Levels: 1 (one
expression), 2 (a loop or a condition), 3 (a small algorithm).

Options (``code:key=value,...``):

* ``families`` — families to draw from, separated by ``+`` (default: all)
* ``levels`` — levels to draw from, e.g. ``1``, ``12``, ``123`` (default ``12``)
* ``tests`` — hidden tests per problem (default 5)
* ``size`` — examples in the split (default: train 2000, test 100)
* ``test_size`` — problems reserved for the test split (default 100)
* ``seed`` — generator seed (default 0)
* ``example`` — show one example call in the prompt: ``1`` (default) or ``0``
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Callable

from reasoner.tasks import Example, Task, TaskError, checked_options

FAMILIES = ("numbers", "strings", "lists", "dicts", "algorithms")
INSTRUCTION = "Reply with the complete function in one ```python code block."
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle", "rocket", "garden", "pencil",
         "window", "silver", "ocean", "forest", "banana", "dragon", "planet", "yellow", "music"]
SUFFIXES = ["ing", "ed", "er", "ly", "s", "!", "?", "_x", "123", "-end"]


@dataclass(frozen=True)
class Template:
    key: str
    family: str
    level: int
    name: str
    args: str  # the signature's parameters, e.g. "n" or "xs, x"
    text: str  # what the function returns, formatted with the parameters
    params: Callable[[], list[dict]]  # every parameter set of the template
    solve: Callable[..., Callable]  # parameters -> the reference implementation
    inputs: Callable[[random.Random], tuple]  # one seeded argument tuple


def _int(rng, lo=-20, hi=50):
    return rng.randint(lo, hi)


def _nat(rng, hi=60):
    return (rng.randint(0, hi),)


def _ints(rng, lo=-10, hi=30, n=(0, 8)):
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _word(rng):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 9)))


def _sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))


def _mixed(rng):
    pool = string.ascii_letters + string.digits + "  "
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 14)))


def _dict(rng):
    keys = rng.sample(WORDS, rng.randint(0, 6))
    return {k: rng.randint(-5, 20) for k in keys}


def _primes_below(n):
    return sum(1 for m in range(2, n) if all(m % d for d in range(2, int(m ** 0.5) + 1)))


def _fizz(a, b):
    def f(n):
        return "FizzBuzz" if n % a == 0 and n % b == 0 else "Fizz" if n % a == 0 else "Buzz" if n % b == 0 else str(n)
    return f


def _fib(a, b):
    def f(n):
        x, y = a, b
        for _ in range(n):
            x, y = y, x + y
        return x
    return f


def _shift(k):
    return lambda s: "".join(chr((ord(c) - 97 + k) % 26 + 97) if "a" <= c <= "z" else c for c in s)


def _dedupe(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _ks(*values, name="k"):
    return lambda: [{name: v} for v in values]


R = range
DIGIT_MODES = {"the sum of the digits of n": lambda n: sum(map(int, str(n))),
               "the number of digits of n": lambda n: len(str(n)),
               "the largest digit of n": lambda n: max(map(int, str(n)))}
COUNT_MODES = {"vowels (a, e, i, o, u, lowercase or uppercase)": lambda c: c in "aeiouAEIOU",
               "uppercase letters": str.isupper, "digits": str.isdigit, "spaces": lambda c: c == " "}
EXTREMES = {"the largest element of xs": max, "the smallest element of xs": min,
            "the difference between the largest and the smallest element of xs": lambda xs: max(xs) - min(xs)}

TEMPLATES = [
    # numbers
    Template("add", "numbers", 1, "add_number", "n", "returns n plus {k}", _ks(*R(1, 41)),
             lambda k: lambda n: n + k, lambda rng: (_int(rng),)),
    Template("mul", "numbers", 1, "multiply", "n", "returns n multiplied by {k}", _ks(*R(2, 21)),
             lambda k: lambda n: n * k, lambda rng: (_int(rng),)),
    Template("multiple", "numbers", 1, "is_multiple", "n", "returns True if n is divisible by {k}, else False",
             _ks(*R(2, 16)), lambda k: lambda n: n % k == 0, lambda rng: (rng.choice([_int(rng, 0, 99), 0, 30, 60]),)),
    Template("cap", "numbers", 1, "cap", "n", "returns n, or {k} if n is larger than {k}", _ks(*R(5, 61, 5)),
             lambda k: lambda n: min(n, k), lambda rng: (_int(rng, -10, 90),)),
    Template("sum_mult", "numbers", 2, "sum_multiples", "n",
             "returns the sum of the numbers from 1 to n (inclusive) that are divisible by {k}", _ks(*R(1, 10)),
             lambda k: lambda n: sum(m for m in range(1, n + 1) if m % k == 0), _nat),
    Template("digits", "numbers", 2, "digit_stat", "n", "returns {mode} (n is a non-negative integer)",
             lambda: [{"mode": m} for m in DIGIT_MODES], lambda mode: DIGIT_MODES[mode],
             lambda rng: (rng.randint(0, 10 ** rng.randint(1, 7)),)),
    Template("powers", "numbers", 2, "power_sum", "n", "returns 1**{p} + 2**{p} + ... + n**{p} (0 when n is 0)",
             _ks(1, 2, 3, 4, name="p"), lambda p: lambda n: sum(m ** p for m in range(1, n + 1)),
             lambda rng: (rng.randint(0, 15),)),
    Template("primes", "numbers", 3, "count_primes", "n", "returns how many prime numbers are smaller than n + {k}",
             _ks(*R(0, 10)), lambda k: lambda n: _primes_below(n + k), lambda rng: (rng.randint(0, 80),)),
    # strings
    Template("repeat", "strings", 1, "repeat", "s", "returns the string s repeated {k} times", _ks(*R(2, 8)),
             lambda k: lambda s: s * k, lambda rng: (_word(rng),)),
    Template("suffix", "strings", 1, "add_suffix", "s", "returns s with {suffix!r} added at the end",
             lambda: [{"suffix": x} for x in SUFFIXES], lambda suffix: lambda s: s + suffix, lambda rng: (_word(rng),)),
    Template("first", "strings", 1, "first_chars", "s", "returns the first {k} characters of s (all of s if it is "
             "shorter)", _ks(*R(1, 8)), lambda k: lambda s: s[:k], lambda rng: (_word(rng),)),
    Template("count_letter", "strings", 2, "count_letter", "s", "returns how many times the letter {c!r} appears in s",
             lambda: [{"c": c} for c in "aeiorstnlm"], lambda c: lambda s: s.count(c),
             lambda rng: ("".join(rng.choice("aeiorstnlmxyz") for _ in range(rng.randint(0, 15))),)),
    Template("count_kind", "strings", 2, "count_chars", "s", "returns the number of {kind} in s",
             lambda: [{"kind": m} for m in COUNT_MODES], lambda kind: lambda s: sum(map(COUNT_MODES[kind], s)),
             lambda rng: (_mixed(rng),)),
    Template("shift", "strings", 3, "shift_letters", "s", "returns s with every lowercase letter moved {k} places "
             "forward in the alphabet, z wrapping around to a, and other characters unchanged", _ks(*R(1, 26)),
             _shift, lambda rng: (_mixed(rng),)),
    # lists
    Template("add_all", "lists", 1, "add_to_all", "xs", "returns a new list with {k} added to every element of xs",
             _ks(*R(1, 31)), lambda k: lambda xs: [x + k for x in xs], lambda rng: (_ints(rng),)),
    Template("count_gt", "lists", 1, "count_greater", "xs", "returns how many elements of the list xs are greater "
             "than {k}", _ks(*R(-5, 21)), lambda k: lambda xs: sum(x > k for x in xs), lambda rng: (_ints(rng),)),
    Template("sum_gt", "lists", 2, "sum_greater", "xs", "returns the sum of the elements of xs that are greater "
             "than {k} (0 if there are none)", _ks(*R(-5, 21)), lambda k: lambda xs: sum(x for x in xs if x > k),
             lambda rng: (_ints(rng),)),
    Template("keep_mult", "lists", 2, "keep_multiples", "xs", "returns the elements of xs that are divisible by {k}, "
             "in their original order", _ks(*R(2, 12)), lambda k: lambda xs: [x for x in xs if x % k == 0],
             lambda rng: (_ints(rng, 0, 60),)),
    Template("extreme", "lists", 2, "extreme", "xs", "returns {mode} (xs is a non-empty list of integers)",
             lambda: [{"mode": m} for m in EXTREMES], lambda mode: EXTREMES[mode],
             lambda rng: (_ints(rng, n=(1, 8)),)),
    Template("kth", "lists", 3, "kth_largest", "xs", "returns the {k}-th largest element of xs, counting repeated "
             "values separately (xs has at least {k} elements)", _ks(*R(1, 5)),
             lambda k: lambda xs: sorted(xs, reverse=True)[k - 1], lambda rng: (_ints(rng, n=(5, 9)),)),
    # dicts
    Template("scale", "dicts", 1, "scale_values", "d", "returns a new dict with the same keys as the dict d and "
             "every value multiplied by {k}", _ks(*R(2, 13)), lambda k: lambda d: {a: v * k for a, v in d.items()},
             lambda rng: (_dict(rng),)),
    Template("keys_gt", "dicts", 2, "keys_above", "d", "returns the sorted list of the keys of the dict d whose "
             "value is greater than {k}", _ks(*R(-3, 16)), lambda k: lambda d: sorted(a for a, v in d.items() if v > k),
             lambda rng: (_dict(rng),)),
    Template("word_count", "dicts", 2, "word_counts", "s", "returns a dict mapping each word of s (words are separated "
             "by spaces) with at least {k} letters to the number of times it appears", _ks(1, 2, 3, 4, 5, 6),
             lambda k: lambda s: {w: s.split().count(w) for w in s.split() if len(w) >= k},
             lambda rng: (" ".join(rng.choice(WORDS[:6] + ["a", "an", "to", "sea"]) for _ in range(rng.randint(0, 7))),)),
    Template("total_letter", "dicts", 2, "total_for_letter", "d", "returns the sum of the values of the dict d whose "
             "key starts with the letter {c!r}", lambda: [{"c": c} for c in "abcdglmoprstwy"],
             lambda c: lambda d: sum(v for a, v in d.items() if a.startswith(c)), lambda rng: (_dict(rng),)),
    # algorithms
    Template("fizz", "algorithms", 2, "fizzbuzz", "n", "returns 'FizzBuzz' if n is divisible by both {a} and {b}, "
             "'Fizz' if only by {a}, 'Buzz' if only by {b}, and otherwise n as a string",
             lambda: [{"a": a, "b": b} for a in R(2, 8) for b in R(2, 8) if a < b], _fizz,
             lambda rng: (rng.randint(1, 100),)),
    Template("find", "algorithms", 2, "find_index", "xs, x", "returns the index of the {which} occurrence of x in "
             "the list xs, or -1 if x is not in xs", lambda: [{"which": "first"}, {"which": "last"}],
             lambda which: lambda xs, x: (-1 if x not in xs else xs.index(x) if which == "first"
                                          else len(xs) - 1 - xs[::-1].index(x)),
             lambda rng: (_ints(rng, 0, 6), rng.randint(0, 7))),
    Template("dedupe", "algorithms", 2, "unique", "xs", "returns the elements of xs without repeats, keeping the "
             "first occurrence of each, in their original order{extra}",
             lambda: [{"extra": ""}, {"extra": ", then sorted ascending"}, {"extra": ", then sorted descending"}],
             lambda extra: (lambda xs: _dedupe(xs) if not extra else sorted(set(xs), reverse="desc" in extra)),
             lambda rng: (_ints(rng, 0, 8, n=(0, 10)),)),
    Template("seq", "algorithms", 3, "sequence", "n", "returns term n of the sequence whose terms 0 and 1 are {a} and "
             "{b} and where every later term is the sum of the two before it",
             lambda: [{"a": a, "b": b} for a in R(0, 4) for b in R(1, 5)], _fib, lambda rng: (rng.randint(0, 20),)),
    Template("sort_abs", "algorithms", 3, "sort_by", "xs", "returns xs sorted by {key}, ties keeping their order",
             lambda: [{"key": k} for k in ("absolute value", "last digit of the absolute value",
                                           "absolute value, largest first")],
             lambda key: lambda xs: sorted(xs, key=lambda x: abs(x) % 10 if "digit" in key else abs(x),
                                           reverse="largest" in key),
             lambda rng: (_ints(rng, -30, 30),)),
]


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(map(repr, args))})"


def build(template: Template, params: dict, rng: random.Random, tests: int, example: bool) -> tuple[str, dict]:
    """The prompt and the reference (hidden tests) of one problem."""
    fn = template.solve(**params)
    shown = template.inputs(rng)
    hidden: list[tuple] = []
    for _ in range(20 * tests):
        if len(hidden) == tests:
            break
        args = template.inputs(rng)
        if args != shown and args not in hidden:
            hidden.append(args)
    lines = [f"assert {_call(template.name, a)} == {fn(*a)!r}" for a in hidden]
    prompt = f"Write a Python function `{template.name}({template.args})` that {template.text.format(**params)}."
    if example:
        prompt += f"\nFor example, `{_call(template.name, shown)}` returns `{fn(*shown)!r}`."
    return f"{prompt}\n{INSTRUCTION}", {"tests": "\n".join(lines) + "\n", "entry_point": template.name}


def generate(split: str = "train", families: str = "+".join(FAMILIES), levels: str = "12", tests: int = 5,
             size: int | None = None, test_size: int = 100, seed: int = 0, example: int = 1) -> Task:
    chosen = [f.strip() for f in families.split("+") if f.strip()]
    if not chosen or set(chosen) - set(FAMILIES):
        raise TaskError(f"code: families must be some of {', '.join(FAMILIES)} joined by + (got {families!r})")
    if not levels or set(levels) - set("123"):
        raise TaskError(f"code: levels must be made of 1, 2, 3 (got {levels!r})")
    if split not in ("train", "test"):
        raise TaskError(f"code: split must be train or test (got {split!r})")
    if tests < 1:
        raise TaskError(f"code: tests must be at least 1 (got {tests})")
    pool = [t for t in TEMPLATES if t.family in chosen and str(t.level) in levels]
    if not pool:
        raise TaskError(f"code: no problem template in families {families!r} at levels {levels!r}")
    by_family: dict[str, list[tuple[Template, dict]]] = {}
    for t in pool:
        by_family.setdefault(t.family, []).extend((t, p) for p in t.params())
    space = sum(len(v) for v in by_family.values())
    if test_size >= space:
        raise TaskError(f"code: only {space} distinct problems for test_size={test_size}; add families or levels")

    def draw(rng: random.Random) -> tuple[Template, dict]:  # a family, then a problem of it
        return rng.choice(by_family[rng.choice(sorted(by_family))])

    def key(item: tuple[Template, dict]) -> tuple:
        return item[0].key, tuple(sorted(item[1].items()))

    rng = random.Random(f"code-test-{seed}")
    held: dict[tuple, tuple[Template, dict]] = {}
    while len(held) < test_size:
        item = draw(rng)
        held.setdefault(key(item), item)
    if split == "test":
        items = list(held.values())[: size or test_size]
    else:
        size = 2000 if size is None else size
        rng, items = random.Random(f"code-train-{seed}"), []
        while len(items) < size:
            item = draw(rng)
            if key(item) not in held:
                items.append(item)
    examples = []
    for i, (template, params) in enumerate(items):
        prompt, reference = build(template, params, random.Random(f"code-{split}-{seed}-{i}"), tests, bool(example))
        examples.append(Example(id=f"code-{split}-{i}", prompt=prompt, reference=reference, verifier="code",
                                meta={"family": template.family, "level": template.level, "template": template.key,
                                      "params": params}))
    return Task(f"code[{split}]", examples, description="seeded function-writing problems", split=split)


_INT_OPTIONS = ("tests", "size", "test_size", "seed", "example")


def load(arg: str | None = None, split: str = "train") -> Task:
    """Seeded Python function-writing problems (numbers, strings, lists, dicts, algorithms), hidden tests in the sandbox."""
    options = checked_options("code", arg, _INT_OPTIONS, ("families", "levels"))
    return generate(split=split, **options)
