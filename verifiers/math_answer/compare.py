"""Decide whether two answer strings say the same thing. Runs inside a bounded worker process.

``compare(answer, reference)`` parses both sides (``parser.parse_answer``, no eval) and applies
the rules in order; the first that holds names the verdict (``details["rule"]``):

* **text**: same text after whitespace removal (cheap, before parsing).
* **choice**: the reference is a multiple-choice letter (``\\text{(C)}``, ``(C)``, ``C``); the
  answer's first letter choice must match.
* **words**: ``\\text{east}`` vs ``East``: case-insensitive word comparison.
* **number**: exact equality (two exact irrationals: the same to 60 significant digits and proved
  equal by ``simplify``). A number written as a decimal is an approximation: ``|a - r| <= rel_tol * |r|``, or a decimal answer
  with 6+ significant digits may be off by one unit in its last digit (``0.333333`` is
  ``\\frac13``, ``0.33`` is not); two terminating decimals (``0.0000672`` vs ``0.000067``) must
  match exactly.
* **expression**: the difference is proved zero by ``expand`` or ``simplify``; random points
  (seeded per check, exact where rational) reject a mismatch first, but never accept alone.
* **equation**: ``x = 3`` vs ``3`` compares the side that is not a lone variable; two equations
  are the same when ``(l1 - r1) / (l2 - r2)`` is a nonzero constant; an inequality in one
  variable is the interval it describes (``2 \\le x < 5`` is ``[2, 5)``).
* **tuple** ordered, element by element; **list** / **set** unordered (a multiset match);
  ``\\pm`` expands to both signs; a one-element list or set matches its element.
* **interval**: same ends and the same open/closed sides; ``(a, b)`` can be read as a tuple or
  an open interval; unions match part by part in any order.
* **matrix**: same shape, element by element; a one-column matrix matches a tuple.
* **percent** ``10\\%`` is 0.1, its one reading; **degrees** ``90^\\circ`` is 90, or pi/2 against a
  side without degrees.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

import sympy

from reasoner.verifiers.math_answer.expressions import NUMERIC_POINTS, Tolerance, close, expr_equal, proved_zero, sample_points
from reasoner.verifiers.math_answer.latex import MIN_SIGNIFICANT, ParseError, clean
from reasoner.verifiers.math_answer.parser import PM, parse_answer
from reasoner.verifiers.math_answer.shapes import (
    Answer,
    Choice,
    Interval,
    Matrix,
    Relation,
    Seq,
    Text,
    Union,
)

_DECIMAL = re.compile(r"[-+]?(\d*)\.(\d+)")


def compare(answer: str, reference: str, rel_tol: float = 1e-6) -> tuple[str, dict]:
    """``(reason, details)``: reason is ``correct``, ``wrong`` or ``unparsable``."""
    if _squash(answer) == _squash(reference) and _squash(answer):
        return "correct", {"rule": "text"}
    try:
        ref = _parse(reference)
    except ParseError as exc:
        return "unparsable", {"side": "reference", "error": str(exc)}
    if _is_choice(ref.value):
        return _choice(answer, ref, rel_tol)
    return _values(answer, ref, rel_tol)


def _values(answer: str, ref: Answer, rel_tol: float, rule_prefix: str = "") -> tuple[str, dict]:
    try:
        ans = _parse(answer)
    except ParseError as exc:
        return "unparsable", {"side": "answer", "error": str(exc), "reference_normalized": show(ref)}
    details = {"answer_normalized": show(ans), "reference_normalized": show(ref)}
    approx_a, approx_r = "decimal" in ans.marks, "decimal" in ref.marks
    tol = Tolerance(rel_tol if (approx_a or approx_r) else 0.0, _last_digit(answer), approx_a, approx_r)
    rule = equal_answers(ans, ref, tol)
    if rule:
        return "correct", {**details, "rule": rule_prefix + rule}
    return "wrong", details


def _choice(answer: str, ref: Answer, rel_tol: float) -> tuple[str, dict]:
    """A letter choice: the answer's letter must be the reference's; where both also state the value
    (``\\textbf{(C)}\\ 10``) the values must match too; an answer with no letter may give the value."""
    letter, rest = choice_parts(answer)
    ref_letter = _letter(ref.value)
    ref_value = ref.value.value if isinstance(ref.value, Choice) else None
    details = {"rule": "choice", "answer_normalized": letter, "reference_normalized": ref_letter}
    if letter is not None:
        if letter != ref_letter:
            return "wrong", details
        if rest and ref_value is not None:
            reason, more = _values(rest, Answer(ref_value, ref.marks), rel_tol, "choice and ")
            return reason, {**more, "answer_normalized": f"choice:{letter} {more.get('answer_normalized', '')}"}
        return "correct", details
    if ref_value is None:
        return "wrong", {**details, "error": "no choice letter"}
    return _values(answer, Answer(ref_value, ref.marks), rel_tol, "choice value: ")


def _last_digit(answer: str) -> Fraction:
    try:
        text = clean(answer)[0]
    except ParseError:
        return Fraction(0)
    m = _DECIMAL.fullmatch(text)
    if not m or len((m.group(1) + m.group(2)).lstrip("0")) < MIN_SIGNIFICANT:
        return Fraction(0)
    return Fraction(1, 10 ** len(m.group(2)))


def _squash(s: str) -> str:
    """Text without spacing, except a space before a digit after a digit or comma (``1 2``, ``32, 349``)."""
    s = re.sub(r"\s+", " ", s.strip().strip("$").rstrip(".").strip())
    return re.sub(r"(?<![\d,]) | (?!\d)", "", s)


@lru_cache(maxsize=2048)
def _parse(text: str) -> Answer:
    return parse_answer(text)


def show(a: Answer) -> str:
    marks = f" [{', '.join(sorted(a.marks))}]" if a.marks else ""
    try:
        return (_show(a.value) + marks)[:300]
    except ValueError:  # a number too long for Python to print
        return "(too long to show)" + marks


def _show(v) -> str:
    if isinstance(v, Seq):
        o, c = {"tuple": "()", "set": "{}", "list": "  "}[v.kind]
        return (o + ", ".join(_show(x) for x in v.items) + c).strip()
    if isinstance(v, Interval):
        return f"{'(' if v.left_open else '['}{_show(v.lo)}, {_show(v.hi)}{')' if v.right_open else ']'}"
    if isinstance(v, Union):
        return " U ".join(_show(p) for p in v.parts)
    if isinstance(v, Matrix):
        return "Matrix(" + str([list(r) for r in v.rows]) + ")"
    if isinstance(v, Relation):
        out = _show(v.sides[0])
        for op, side in zip(v.ops, v.sides[1:]):
            out += f" {op} {_show(side)}"
        return out
    if isinstance(v, Text):
        return f"text:{v.text}"
    if isinstance(v, Choice):
        return f"choice:{v.letter}"
    return sympy.sstr(v)


# --- multiple choice ------------------------------------------------------------------------

_CHOICE_IN_ANSWER = re.compile(r"^(?:\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{\s*)?\(?\s*([A-J])\s*(?:\)|\}|$|[\s.:,])")


_CHOICE_ANYWHERE = re.compile(r"(?<![A-Za-z\\])([A-J])(?![A-Za-z])")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _is_choice(v) -> bool:
    return isinstance(v, Choice) or (isinstance(v, sympy.Symbol) and re.fullmatch(r"[A-J]", v.name) is not None)


def _letter(v) -> str:
    return v.letter if isinstance(v, Choice) else v.name


def choice_letter(answer: str) -> str | None:
    """The choice letter an answer starts with: ``(C)``, ``C``, ``\\textbf{(C)} 25``, ``C.``."""
    return choice_parts(answer)[0]


def choice_parts(answer: str) -> tuple[str | None, str]:
    """``(letter, the value after it)``; no letter when another letter appears (``C, D``, ``(C) or (D)``:
    hedges) or words follow it (``(C)\\text{ is not the answer}``)."""
    try:
        s, _ = clean(answer)
    except ParseError:
        return None, ""
    s = s.strip()
    m = _CHOICE_IN_ANSWER.match(s)
    if not m or set(_CHOICE_ANYWHERE.findall(s)) - {m.group(1)}:
        return None, ""
    rest = s[m.end():].strip().lstrip("}").strip()
    if _WORD.search(re.sub(r"\\[A-Za-z]+", " ", rest)):
        return None, ""
    return m.group(1), rest


# --- structural comparison ------------------------------------------------------------------

def equal_answers(a: Answer, r: Answer, tol: float) -> str | None:
    """Name of the rule under which ``a`` equals ``r``, or None."""
    if isinstance(a.value, Text) or isinstance(r.value, Text):
        if isinstance(a.value, Text) and isinstance(r.value, Text) and a.value.text == r.value.text:
            return "words"
        number = [_NUMBER_WORDS.get(x.value.text) for x in (a, r) if isinstance(x.value, Text)]
        other = r.value if isinstance(a.value, Text) else a.value
        if number and number[0] is not None and isinstance(other, sympy.Basic) and other == number[0]:
            return "number word"
        return None
    bases_a, bases_r = ({m for m in x.marks if m.startswith("base ")} for x in (a, r))
    if bases_a and bases_r and bases_a != bases_r:  # 204_6 is not 204_5
        return None
    for av, how_a in _readings(a, r):
        for rv, how_r in _readings(r, a):
            rule = equal_values(av, rv, tol)
            if rule:
                how = how_a or how_r
                return f"{rule} ({how})" if how else rule
    return None


_NUMBER_WORDS = {w: sympy.Integer(k) for k, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({w: sympy.Integer(10 * k) for k, w in enumerate(
    "thirty forty fifty sixty seventy eighty ninety".split(), start=3)})
_NUMBER_WORDS.update({"a hundred": sympy.Integer(100), "one hundred": sympy.Integer(100)})


def _readings(a: Answer, other: Answer):
    """The values ``a`` may stand for. A percent has one reading, x/100 (``25\\%`` is 0.25, never 25); an
    angle in degrees is its number or, against a side without degrees, also its radians."""
    if "percent" in a.marks:
        yield _map(a.value, lambda x: x / 100), "percent"
        return
    yield a.value, ""
    if "degree" in a.marks and "degree" not in other.marks:
        yield _map(a.value, lambda x: x * sympy.pi / 180), "degrees"


def _map(v, f):
    if isinstance(v, sympy.Basic):
        return f(v)
    if isinstance(v, Seq):
        return Seq(v.kind, tuple(_map(x, f) for x in v.items))
    if isinstance(v, Interval):
        return Interval(_map(v.lo, f), _map(v.hi, f), v.left_open, v.right_open)
    return v


def equal_values(a, r, tol: float) -> str | None:
    if isinstance(a, sympy.Basic) and isinstance(r, sympy.Basic):
        if a.has(PM) or r.has(PM):
            return _lists(_items(a), _items(r), tol, ordered=False) and "list"
        return expr_equal(a, r, tol)
    if isinstance(r, Relation) or isinstance(a, Relation):
        return _relation(a, r, tol)
    if isinstance(r, (Interval, Union)) or isinstance(a, (Interval, Union)):
        return _intervals(a, r, tol)
    if isinstance(r, Matrix) or isinstance(a, Matrix):
        return _matrices(a, r, tol)
    if isinstance(r, Seq) or isinstance(a, Seq):
        return _seqs(a, r, tol)
    return None


def _items(v) -> list:
    """Items of a list or set, ``\\pm`` expanded; a lone value is a one-item list."""
    items = list(v.items) if isinstance(v, Seq) and v.kind in ("list", "set") else [v]
    out = []
    for it in items:
        if isinstance(it, sympy.Basic) and it.has(PM):
            out.extend([it.xreplace({PM: sympy.Integer(1)}), it.xreplace({PM: sympy.Integer(-1)})])
        else:
            out.append(it)
    return out


def _seqs(a, r, tol) -> str | None:
    ka = a.kind if isinstance(a, Seq) else "scalar"
    kr = r.kind if isinstance(r, Seq) else "scalar"
    if "tuple" in (ka, kr):
        if {ka, kr} <= {"tuple", "list"} and len(a.items) == len(r.items):
            if all(equal_values(x, y, tol) for x, y in zip(a.items, r.items)):
                return "tuple"
        return None
    ia, ir = _items(a), _items(r)
    if "set" in (ka, kr):  # sets: repeated elements count once
        ia, ir = _dedupe(ia), _dedupe(ir)
    return _lists(ia, ir, tol, ordered=False) and ("set" if "set" in (ka, kr) else "list")


def _dedupe(items: list) -> list:
    out = []
    for it in items:
        if not any(it == o for o in out):
            out.append(it)
    return out


def _lists(ia: list, ir: list, tol: float, ordered: bool) -> bool:
    if len(ia) != len(ir):
        return False
    if ordered:
        return all(equal_values(x, y, tol) for x, y in zip(ia, ir))
    unused = list(range(len(ia)))
    for y in ir:  # exact matches first would be a speed-up; sizes here are small
        for j in unused:
            if equal_values(ia[j], y, tol):
                unused.remove(j)
                break
        else:
            return False
    return True


def _as_interval(v):
    if isinstance(v, (Interval, Union)):
        return v
    if isinstance(v, Seq) and v.kind == "tuple" and len(v.items) == 2:  # (2, 5); a bare list 2, 5 is two items
        return Interval(v.items[0], v.items[1], True, True)
    if isinstance(v, Relation):
        return _relation_interval(v)
    return None


def _intervals(a, r, tol) -> str | None:
    a, r = _as_interval(a), _as_interval(r)
    if a is None or r is None:
        return None
    pa = list(a.parts) if isinstance(a, Union) else [a]
    pr = list(r.parts) if isinstance(r, Union) else [r]
    pa, pr = [_as_interval(p) for p in pa], [_as_interval(p) for p in pr]
    if any(not isinstance(p, Interval) for p in pa + pr) or len(pa) != len(pr):
        return None
    unused = list(range(len(pa)))
    for y in pr:
        for j in unused:
            x = pa[j]
            if x.left_open == y.left_open and x.right_open == y.right_open and \
                    _ends_equal(x.lo, y.lo, tol) and _ends_equal(x.hi, y.hi, tol):
                unused.remove(j)
                break
        else:
            return None
    return "interval"


def _ends_equal(x, y, tol) -> bool:
    return isinstance(x, sympy.Basic) and isinstance(y, sympy.Basic) and bool(expr_equal(x, y, tol))


def _matrices(a, r, tol) -> str | None:
    def rows(v):
        if isinstance(v, Matrix):
            return v.rows
        if isinstance(v, Seq) and v.kind in ("tuple", "list"):
            return tuple((x,) for x in v.items)  # a tuple is a column vector
        return None
    ra, rr = rows(a), rows(r)
    if ra is None or rr is None or len(ra) != len(rr) or any(len(x) != len(y) for x, y in zip(ra, rr)):
        return None
    for xa, xr in zip(ra, rr):
        for x, y in zip(xa, xr):
            if not (isinstance(x, sympy.Basic) and isinstance(y, sympy.Basic) and expr_equal(x, y, tol)):
                return None
    return "matrix"


# --- relations ------------------------------------------------------------------------------

_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


def _lone_symbol(v) -> bool:
    return isinstance(v, sympy.Symbol)


def _relation(a, r, tol) -> str | None:
    if isinstance(a, Relation) and isinstance(r, Relation):
        if a.ops == ("=",) and r.ops == ("=",):
            return _equations(a, r, tol)
        if all(op != "=" for op in a.ops + r.ops):
            ia, ir = _relation_interval(a), _relation_interval(r)
            if ia is not None and ir is not None:
                return _intervals(ia, ir, tol) and "inequality"
            if len(a.ops) == len(r.ops) == 1:
                return _same_inequality(a, r, tol)
        return None
    answer_is_rel = isinstance(a, Relation)
    rel, other = (a, r) if answer_is_rel else (r, a)

    def same(side):  # the answer's part first, as `Tolerance` expects
        return equal_values(side, other, tol) if answer_is_rel else equal_values(other, side, tol)
    if rel.ops == ("=",):
        lhs, rhs = rel.sides
        if isinstance(lhs, Seq) and lhs.kind == "tuple" and all(_lone_symbol(x) for x in lhs.items):
            return same(rhs) and "equation value"  # (x, y) = (1, 2)
        if _lone_symbol(lhs) and (not isinstance(other, sympy.Basic) or lhs not in other.free_symbols):
            return same(rhs) and "equation value"
        if _lone_symbol(rhs) and (not isinstance(other, sympy.Basic) or rhs not in other.free_symbols):
            return same(lhs) and "equation value"
        return None
    if isinstance(other, (Interval, Union, Seq)):
        return _intervals(a, r, tol) and "inequality"
    return None


def _equations(a: Relation, r: Relation, tol) -> str | None:
    (la, ra), (lr, rr) = a.sides, r.sides
    if not all(isinstance(x, sympy.Basic) for x in (la, ra, lr, rr)):
        return None
    if _lone_symbol(la) and la == lr:
        return equal_values(ra, rr, tol) and "equation"
    da, dr = la - ra, lr - rr
    if da == 0 or dr == 0:
        return "equation" if da == dr else None
    ratio = sympy.cancel(sympy.together(da / dr))
    if ratio.is_number and ratio != 0 and ratio.is_finite:
        return "equation"
    if ratio.free_symbols:  # a constant ratio that cancel cannot see: guess it at a point, then prove it
        c = _constant_value(ratio)
        if c is not None and c != 0 and proved_zero(da - c * dr):
            return "equation"
    return None


def _constant_value(expr):
    """The exact value of ``expr`` at one random rational point if it looks constant there and at the
    others, else None (a guess that `proved_zero` must then confirm)."""
    values = [v for v in sample_points(expr, expr, NUMERIC_POINTS) if v is not None]
    if len(values) < 3 or not all(close(v[0], values[0][0]) for v in values):
        return None
    return values[0][0] if isinstance(values[0][0], sympy.Rational) else None


def _same_inequality(a: Relation, r: Relation, tol) -> str | None:
    (a1, a2), (r1, r2), op_a, op_r = a.sides, r.sides, a.ops[0], r.ops[0]
    if op_a == op_r and expr_equal(a1, r1, tol) and expr_equal(a2, r2, tol):
        return "inequality"
    if _FLIP[op_a] == op_r and expr_equal(a1, r2, tol) and expr_equal(a2, r1, tol):
        return "inequality"
    return None


def _relation_interval(rel: Relation):
    """``2 <= x < 5`` -> ``[2, 5)``, ``x > 3`` -> ``(3, oo)``; None if it is not one variable's range."""
    sides, ops = list(rel.sides), list(rel.ops)
    if any(op in ("=", "!=") for op in ops) or not all(isinstance(s, sympy.Basic) for s in sides):
        return None
    var = [i for i, s in enumerate(sides) if _lone_symbol(s)]
    if len(var) != 1 or len(sides) > 3:
        return None
    k = var[0]
    if sides[k] in set().union(*(s.free_symbols for i, s in enumerate(sides) if i != k)):
        return None
    if ops[0] in (">", ">="):  # write it with < so the variable's bounds read left to right
        sides.reverse()
        ops = [_FLIP[o] for o in reversed(ops)]
        k = len(sides) - 1 - k
    lo, hi, lo_open, hi_open = -sympy.oo, sympy.oo, True, True
    if k > 0:
        lo, lo_open = sides[k - 1], ops[k - 1] == "<"
    if k < len(sides) - 1:
        hi, hi_open = sides[k + 1], ops[k] == "<"
    if any(o in (">", ">=") for o in ops):
        return None
    return Interval(lo, hi, lo_open, hi_open)
