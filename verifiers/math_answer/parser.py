"""A recursive-descent parser from answer text (LaTeX or plain) to sympy objects and answer shapes.

The parser builds sympy objects directly (``Integer``, ``Rational``, ``Symbol``, ``Add``, ``Mul``,
``Pow``, ``sqrt``, ``sin`` ...) from whitelisted tokens; it never calls ``eval``, ``sympify`` or
``parse_expr``. Grammar (``docs/verifiers.md`` has the long form)::

    answer   := item ("," item)*                   several items: an unordered list
    item     := union (relop union)*  word*         relop: = < > \\le \\ge \\ne; trailing words are units
    union    := sum ("\\cup" sum)*
    sum      := ["+"|"-"|"\\pm"] term (("+"|"-"|"\\pm"|"\\mp") term)*
    term     := unary (("*"|"\\cdot"|"\\times"|"/"|"\\div") unary | unary)*   juxtaposition multiplies
    unary    := ("-"|"+") unary | power
    power    := postfix ("^" exponent)?
    postfix  := primary "!"*
    primary  := number ["_" base] | letter ["_" sub] | "(" answer ")" | "[" answer "]" | "{" answer "}"
              | "\\{" answer "\\}" | "|" sum "|" | \\frac a b | \\sqrt[n] a | \\binom a b | function arg
              | \\pi | \\infty | greek | matrix environment | \\lfloor sum \\rfloor | \\lceil sum \\rceil

Numbers are exact (``0.35`` is ``Rational(7, 20)``). Sizes are guarded before anything is
built: a power or factorial whose value would have more than ``sizes.MAX_DIGITS`` digits, nesting
deeper than ``MAX_DEPTH`` and answers longer than ``MAX_CHARS`` are a `ParseError`, so a
pathological answer costs microseconds, not minutes.
"""

from __future__ import annotations

import math
import re

import sympy

from reasoner.verifiers.math_answer import sizes
from reasoner.verifiers.math_answer.latex import (
    FUNCTIONS,
    GREEK,
    MAX_CHARS,
    UNIT_WORDS,
    ParseError,
    Token,
    clean,
    tokenize,
    unwrap_text,
)
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

MAX_DEPTH = 60

PM = sympy.Symbol("\u00b1")  # stands for the sign of \pm until an item is expanded; text cannot name it


# --- entry point --------------------------------------------------------------------------

_TEXT_OPEN = r"\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{\s*"
_CHOICE = (re.compile(f"(?:{_TEXT_OPEN})?" + r"\(\s*([A-J])\s*\)\s*\}?"),  # (C), \text{(C)}
           re.compile(_TEXT_OPEN + r"([A-J])\s*\}"))                          # \text{C}
_CHOICE_VALUE = re.compile(f"(?:{_TEXT_OPEN})?" + r"\(\s*([A-J])\s*\)\s*\}?\s*(\S.*)")  # \textbf{(C)}\ 10
ANSWER_WORDS = frozenset("yes no none true false odd even undefined never always neither both".split())
MAX_SYMBOLIC_BINOMIAL = 1000   # \binom{x}{k} is a polynomial of degree k


def parse_answer(text: str) -> Answer:
    """Parse one answer string into an `Answer`; raises `ParseError` when it cannot."""
    s, marks = clean(text)
    if not s:
        raise ParseError("empty answer")
    choice = _CHOICE[0].fullmatch(s) or _CHOICE[1].fullmatch(s)
    if choice:
        return Answer(Choice(choice.group(1)), marks)
    choice = _CHOICE_VALUE.fullmatch(s)
    if choice:  # an AMC-style choice with its value: both are the answer
        value = parse_answer(choice.group(2))
        if isinstance(value.value, (Choice, Text)):
            raise ParseError("a choice followed by words")
        return Answer(Choice(choice.group(1), value.value), marks | value.marks)
    plain = unwrap_text(s).strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z '\-]*", plain) and _is_text(plain):
        return Answer(Text(" ".join(plain.lower().split())), marks)
    tokens = tokenize(s)
    if not tokens:
        raise ParseError("empty answer")
    value, extra = _Parser(tokens).parse()
    if "in" in marks:  # x \in (2, 5): after "in", a pair in parentheses is an open interval
        marks = marks - {"in"}
        if isinstance(value, Seq) and value.kind == "tuple" and len(value.items) == 2:
            value = Interval(value.items[0], value.items[1], True, True)
    return Answer(value, marks | extra)


def is_unit(word: str) -> bool:
    w = word.lower()
    return w in UNIT_WORDS or (w.endswith("s") and w[:-1] in UNIT_WORDS)


def _is_text(plain: str) -> bool:
    words = plain.replace("-", " ").split()
    if len(words) == 1 and words[0].lower() in ANSWER_WORDS:  # \text{no} is the word, not n times o
        return True
    return any(len(w) >= 3 and w.lower() not in FUNCTIONS and w.lower() not in ("pi", "infty", "inf", "infinity")
               for w in words)


# --- the parser ---------------------------------------------------------------------------

_RELOPS = {"=": "=", "<": "<", ">": ">", "\\le": "<=", "\\leq": "<=", "\\ge": ">=", "\\geq": ">=",
           "\\lt": "<", "\\gt": ">", "\\ne": "!=", "\\neq": "!=", "\\approx": "="}
_MULOPS = ("*", "\\cdot", "\\times", "\\ast")
_DIVOPS = ("/", "\\div")
_SPECIAL_SYMBOLS = {"i": sympy.I, "e": sympy.E}
_FUNC = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
         "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
         "arccot": sympy.acot, "arcsec": sympy.asec, "arccsc": sympy.acsc, "sinh": sympy.sinh,
         "cosh": sympy.cosh, "tanh": sympy.tanh, "coth": sympy.coth, "ln": sympy.log, "log": sympy.log,
         "lg": lambda x: sympy.log(x, 10), "exp": sympy.exp, "sqrt": sympy.sqrt, "abs": sympy.Abs}
_INVERSE = {"sin": sympy.asin, "cos": sympy.acos, "tan": sympy.atan, "cot": sympy.acot}
_CLOSERS = {")", "]", "}", "\\}", "\\rangle", "|", "\\rfloor", "\\rceil", "&", "\\\\", "\\rvert"}
_MATRIX_ENVS = ("pmatrix", "bmatrix", "matrix", "Bmatrix", "smallmatrix")


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.toks = tokens
        self.i = 0
        self.depth = 0
        self.marks: set[str] = set()

    # token helpers
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t is not None and t.text in texts and t.kind in ("op", "cmd", "word")

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise ParseError("unexpected end of answer")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise ParseError(f"expected {text!r}, found {t.text!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"nesting deeper than {MAX_DEPTH}")

    # grammar
    def parse(self):
        value = self.parse_list(end=None)
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek().text!r}")
        return value, frozenset(self.marks)

    def parse_list(self, end):
        items = [self.parse_item()]
        while self.at(",", ";"):
            self.take()
            if self.peek() is None or (end and self.at(*end)):
                break
            items.append(self.parse_item())
        return items[0] if len(items) == 1 else Seq("list", tuple(items))

    def parse_item(self):
        t = self.peek()
        if t is not None and t.kind == "letter" and self.peek(1) is not None and self.peek(1).text in ("\\in",):
            self.i += 2
            return self.parse_union()
        sides, ops = [self.parse_union()], []
        while self.peek() is not None and self.peek().text in _RELOPS and self.peek().kind in ("op", "cmd"):
            ops.append(_RELOPS[self.take().text])
            sides.append(self.parse_union())
        while self.peek() is not None and self.peek().kind == "word" and is_unit(self.peek().text):
            self.take()
            self.marks.add("unit")
        return sides[0] if not ops else Relation(tuple(ops), tuple(sides))

    def parse_union(self):
        parts = [self.parse_sum()]
        while self.at("\\cup", "U"):
            self.take()
            parts.append(self.parse_sum())
        return parts[0] if len(parts) == 1 else Union(tuple(parts))

    def parse_sum(self):
        sign = None
        if self.at("+", "-", "\\pm", "\\mp"):
            sign = self.take().text
        first = self.parse_term()
        if not isinstance(first, sympy.Basic):
            if sign is not None and sign != "+":
                raise ParseError(f"{sign} before a {type(first).__name__.lower()}")
            return first
        total = _apply_sign(sign, first)
        while self.at("+", "-", "\\pm", "\\mp"):
            op = self.take().text
            total = total + _apply_sign(op, self._expr(self.parse_term()))
        return sizes.check_size(total)

    def parse_term(self):
        value = self.parse_unary()
        mixed_ok = self._last_was_integer_literal()
        while True:
            t = self.peek()
            if t is None or t.text in _CLOSERS and t.kind in ("op", "cmd"):
                return value
            if t.text in _MULOPS and t.kind in ("op", "cmd"):
                self.take()
                value = _multiply(value, self.parse_unary())
            elif t.text in _DIVOPS and t.kind in ("op", "cmd"):
                self.take()
                value = self._expr(value) / self._expr(self.parse_unary())
            elif self._starts_implicit(t):
                if mixed_ok and t.text == "\\frac" and isinstance(value, sympy.Integer):
                    frac = self.parse_unary()
                    if isinstance(frac, sympy.Rational):  # 3\frac{1}{2} is a mixed number
                        value = value + frac if value >= 0 else value - frac
                        continue
                    value = value * frac
                else:
                    value = _multiply(value, self.parse_unary())
            else:
                return value
            mixed_ok = False
            value = sizes.check_size(value)

    def _last_was_integer_literal(self) -> bool:
        prev = self.toks[self.i - 1] if self.i > 0 else None
        before = self.toks[self.i - 2] if self.i > 1 else None
        return prev is not None and prev.kind == "num" and "." not in prev.text and \
            (before is None or before.text not in ("^", "_"))

    def _starts_implicit(self, t: Token) -> bool:
        if t.kind in ("letter", "num"):
            return t.kind == "letter" or self.toks[self.i - 1].kind != "num"
        if t.kind == "word":
            return t.text in _FUNC or t.text in ("pi", "infty", "oo", "infinity")
        if t.kind == "cmd":
            name = t.text[1:]
            return name.startswith("begin{") or name in FUNCTIONS or name in GREEK or name in (
                "frac", "sqrt", "pi", "binom", "lfloor", "lceil", "infty", "mathbf", "vec", "boldsymbol",
                "text", "mathrm", "operatorname", "lvert")
        return t.text in ("(", "\\langle")

    @staticmethod
    def _expr(v):
        if not isinstance(v, sympy.Basic):
            raise ParseError(f"arithmetic on a {type(v).__name__.lower()}")
        return v

    def parse_unary(self):
        if self.at("-", "+"):
            op = self.take().text
            v = self._expr(self.parse_unary())
            return -v if op == "-" else v
        return self.parse_power()

    def parse_power(self):
        base = self.parse_postfix()
        if self.at("^"):
            self.take()
            exp = self.parse_exponent()
            base = sizes.power(self._expr(base), self._expr(exp))
            while self.at("!"):
                self.take()
                base = sizes.factorial(base)
        return base

    def parse_exponent(self):
        if self.at("-", "+"):
            op = self.take().text
            v = self._expr(self.parse_exponent())
            return -v if op == "-" else v
        if self.at("{"):
            return self.parse_group()
        return self.parse_postfix()

    def parse_postfix(self):
        v = self.parse_primary()
        while self.at("!"):
            self.take()
            v = sizes.factorial(self._expr(v))
        return v

    def parse_group(self, opener="{", closer="}"):
        self.expect(opener)
        self.enter()
        v = self.parse_list(end=(closer,))
        self.expect(closer)
        self.depth -= 1
        return v

    def parse_arg(self):
        """A command argument: a braced group or one token (``\\frac 34`` is 3/4)."""
        t = self.peek()
        if t is None:
            raise ParseError("missing argument")
        if t.text == "{":
            return self._expr(self.parse_group())
        if t.kind == "num":
            self.take()
            if len(t.text) > 1 and "." not in t.text:
                self.toks.insert(self.i, Token("num", t.text[1:]))
                return sympy.Integer(t.text[0])
            if "." in t.text:
                self.marks.add("decimal")
            return sympy.Rational(t.text)
        return self._expr(self.parse_primary())

    def parse_primary(self):
        t = self.take()
        self.enter()
        try:
            return self._primary(t)
        finally:
            self.depth -= 1

    def _primary(self, t: Token):
        k, x = t.kind, t.text
        if k == "num":
            if "." in x:
                self.marks.add("decimal")
            value = sympy.Rational(x) if "." in x else sympy.Integer(x)
            if self.at("_") and "." not in x:  # 204_5: a numeral in base 5, compared by its digits and base
                self.take()
                base = self.parse_subscript()
                if not base.isdigit() or not 2 <= int(base) <= 36:
                    raise ParseError(f"base {base!r} is not a number from 2 to 36")
                if int(base) <= 10 and any(int(d) >= int(base) for d in x):
                    raise ParseError(f"digit not valid in base {base}: {x}")
                self.marks.add(f"base {int(base)}")
            return value
        if k == "letter":
            if self.at("_"):
                self.take()
                return sympy.Symbol(f"{x}_{self.parse_subscript()}")
            return _SPECIAL_SYMBOLS.get(x) or sympy.Symbol(x)
        if k == "word":
            return self._word(x)
        if x == "(":
            return self._bracketed("(")
        if x == "[":
            return self._bracketed("[")
        if x == "{":
            self.i -= 1
            return self.parse_group()
        if x == "\\{":
            nxt = self.peek(1)
            if self.peek() is not None and self.peek().kind == "letter" and nxt is not None and \
                    nxt.text in (":", "|", "\\mid"):  # set-builder {x : 0 < x < 1} is its condition
                self.i += 2
                cond = self.parse_item()
                self.expect("\\}")
                return cond
            self.i -= 1
            return _as_set(self.parse_group("\\{", "\\}"))
        if x == "\\langle":
            self.i -= 1
            return _as_tuple(self.parse_group("\\langle", "\\rangle"))
        if x in ("|", "\\lvert", "\\vert"):
            v = self._expr(self.parse_sum())
            self.expect({"|": "|", "\\lvert": "\\rvert", "\\vert": "\\vert"}[x])
            return sympy.Abs(v)
        if x in ("\\lfloor", "\\lceil"):
            v = self._expr(self.parse_sum())
            self.expect("\\rfloor" if x == "\\lfloor" else "\\rceil")
            return sympy.floor(v) if x == "\\lfloor" else sympy.ceiling(v)
        if k == "cmd":
            return self._command(x[1:])
        raise ParseError(f"unexpected {x!r}")

    def _word(self, w: str):
        if w == "pi":
            return sympy.pi
        if w in ("infty", "inf", "oo", "infinity"):
            return sympy.oo
        if w in _FUNC:
            return self._function(w)
        raise ParseError(f"unexpected word {w!r}")

    def parse_subscript(self) -> str:
        if self.at("{"):
            self.take()
            parts = []
            while not self.at("}"):
                parts.append(self.take().text)
                if len(parts) > 20:
                    raise ParseError("subscript too long")
            self.take()
            return "".join(parts)
        return self.take().text

    def _bracketed(self, opener: str):
        self.enter()
        inner = self.parse_list(end=(")", "]"))
        closer = self.take().text
        self.depth -= 1
        if closer not in (")", "]"):
            raise ParseError(f"{opener} closed by {closer}")
        items = inner.items if isinstance(inner, Seq) and inner.kind == "list" else (inner,)
        if len(items) == 1:
            if opener + closer != "()" and opener + closer != "[]":
                raise ParseError(f"{opener}...{closer} with one item")
            return inner
        if opener + closer == "()":
            return Seq("tuple", tuple(items))
        if len(items) != 2:
            raise ParseError(f"interval with {len(items)} ends")
        return Interval(items[0], items[1], opener == "(", closer == ")")

    def _command(self, name: str):
        if name == "frac":
            num, den = self.parse_arg(), self.parse_arg()
            return sizes.check_size(num / den)
        if name == "sqrt":
            index = None
            if self.at("["):
                self.take()
                index = self._expr(self.parse_sum())
                self.expect("]")
            arg = self.parse_arg()
            return sizes.power(arg, sympy.Rational(1, 2) if index is None else 1 / index)
        if name == "binom":
            n, k = self.parse_arg(), self.parse_arg()
            if n.is_number and (not isinstance(n, sympy.Integer) or abs(n) > 10**6):
                raise ParseError("binomial too large")
            if not n.is_number and isinstance(k, sympy.Integer) and abs(k) > MAX_SYMBOLIC_BINOMIAL:
                raise ParseError(f"binomial of a variable over {MAX_SYMBOLIC_BINOMIAL}: too large to check")
            if isinstance(n, sympy.Integer) and isinstance(k, sympy.Integer) and 0 <= k <= n:
                digits = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10)
                if digits > sizes.MAX_DIGITS:
                    raise ParseError(f"binomial with more than {sizes.MAX_DIGITS} digits")
            return sympy.binomial(n, k)
        if name == "pi":
            return sympy.pi
        if name in ("infty", "infin", "inf"):
            return sympy.oo
        if name in ("emptyset", "varnothing"):
            return Seq("set", ())
        if name in GREEK:
            return sympy.Symbol(name)
        if name in FUNCTIONS:
            return self._function(name)
        if name in ("mathbf", "vec", "boldsymbol", "bar", "overline", "mathit", "mathsf", "boxed", "fbox"):
            return self.parse_arg()
        if name in ("text", "textrm", "textnormal", "textup", "textit", "textbf", "mbox", "mathrm", "rm",
                    "operatorname"):
            if self.at("{"):
                return self.parse_group()
            return self.parse_primary()
        if name.startswith("begin{"):
            return self._matrix(name[len("begin{"):-1])
        raise ParseError(f"unexpected \\{name}")

    def _function(self, name: str):
        power = None
        base = None
        if name == "log" and self.at("_"):
            self.take()
            base = self.parse_arg() if not self.at("{") else self._expr(self.parse_group())
        if self.at("^"):
            self.take()
            power = self._expr(self.parse_exponent())
        if self.at("("):
            self.take()
            self.enter()
            arg = self._expr(self.parse_sum())
            self.expect(")")
            self.depth -= 1
        elif self.at("{"):
            arg = self._expr(self.parse_group())
        else:  # \sin 2x: the argument runs over the juxtaposed factors that follow
            arg = self._expr(self.parse_power())
            while self.peek() is not None and self._starts_implicit(self.peek()) and not self._is_function(self.peek()):
                arg = arg * self._expr(self.parse_power())
        if power is not None and power == -1 and name in _INVERSE:
            return _INVERSE[name](arg)
        value = _FUNC[name](arg) if base is None else sympy.log(arg, base)
        return value if power is None else sizes.power(value, power)

    @staticmethod
    def _is_function(t: Token) -> bool:
        return (t.kind == "cmd" and t.text[1:] in FUNCTIONS) or (t.kind == "word" and t.text in _FUNC)

    def _matrix(self, env: str):
        if env not in _MATRIX_ENVS:
            raise ParseError(f"environment {env} not supported")
        rows, row = [], []
        while True:
            if self.peek() is None:
                raise ParseError(f"\\begin{{{env}}} without \\end")
            if self.at(f"\\end{{{env}}}"):
                self.take()
                break
            row.append(self._expr(self.parse_sum()))
            if self.at("&"):
                self.take()
            elif self.at("\\\\"):
                self.take()
                rows.append(tuple(row))
                row = []
        if row:
            rows.append(tuple(row))
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("matrix rows of different lengths")
        return Matrix(tuple(rows))


def _multiply(a, b):
    """``a * b`` for expressions, and a scalar times a matrix element by element."""
    if isinstance(b, Matrix) and isinstance(a, sympy.Basic):
        return Matrix(tuple(tuple(a * x for x in row) for row in b.rows))
    if isinstance(a, Matrix) and isinstance(b, sympy.Basic):
        return Matrix(tuple(tuple(x * b for x in row) for row in a.rows))
    return _Parser._expr(a) * _Parser._expr(b)


def _apply_sign(sign, v):
    if sign == "-":
        return -v
    if sign == "\\pm":
        return PM * v
    if sign == "\\mp":
        return -PM * v
    return v


def _as_set(v):
    if isinstance(v, Seq) and v.kind in ("list", "set"):
        return Seq("set", v.items)
    return Seq("set", (v,))


def _as_tuple(v):
    if isinstance(v, Seq) and v.kind == "list":
        return Seq("tuple", v.items)
    return Seq("tuple", (v,))


__all__ = [
    "MAX_CHARS",
    "Answer",
    "Choice",
    "Interval",
    "Matrix",
    "ParseError",
    "Relation",
    "Seq",
    "Text",
    "Union",
    "parse_answer",
]
