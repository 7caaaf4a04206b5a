"""Answer text to tokens: string clean-up, then a whitelist tokenizer. Nothing here evaluates text.

``clean`` removes what carries no value (math delimiters, spacing commands, ``\\left``/``\\right``,
thousands separators, ``\\$``) and records what carries a unit of measure as *marks*
(``percent``, ``degree``, ``unit``) so that the comparison can apply the matching rule.

``tokenize`` turns the cleaned text into tokens drawn from a fixed whitelist: numbers, single
Latin letters, known words, known LaTeX commands, operators and brackets. Any other character
or command is a `ParseError`, so text such as ``__import__('os')`` never reaches anything that
could run it: it stops here, at the quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reasoner.verifiers.extract import MACRO

MAX_CHARS = 1000  # an answer longer than this (after clean-up) is not parsed
MIN_SIGNIFICANT = 6  # a decimal answer this precise may differ from the reference by one unit in its last digit


class ParseError(ValueError):
    """The answer is not in the grammar, or is too long, too deep or too large to evaluate."""


@dataclass(frozen=True)
class Token:
    kind: str  # num | letter | word | cmd | op
    text: str

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


# --- clean-up ---------------------------------------------------------------------------

_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SIZING = re.compile(r"\\(?:left|right|[bB]ig{1,2}[lr]?|displaystyle|textstyle|limits|nolimits)(?![a-zA-Z])")
_SPACING = re.compile(r"(?<!\\)\\(?:[,;:! ]|(?:quad|qquad|enspace|thinspace|medspace|thickspace|hfill)(?![a-zA-Z]))|~")
_REPEAT_BAR = re.compile(r"(\d*)\.(\d*)\\overline\s*(?:\{\s*(\d+)\s*\}|(\d))")
_REPEAT_DOTS = re.compile(r"(\d*)\.(\d+)\s*(?:\\[lc]?dots|\.\.\.|\u2026)")
_SCIENTIFIC = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d{1,4})(?![\w.])")
_MIXED = re.compile(r"(?<![\d.,/^_{])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\d.])")
_SCALE = {"hundred": 2, "thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_THOUSANDS_BRACE = re.compile(r"(?<=\d)\{,\}(?=\d{3})")
_THOUSANDS_THIN = re.compile(r"(?<=\d),\s*\\!\s*(?=\d{3}(?!\d))")
_THOUSANDS_PLAIN = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\^\s*\\circ|°|\\degree(?![a-zA-Z])|"
                     r"\\(?:text|mbox|mathrm|textrm)\s*\{\s*degrees?\s*\}|\s+degrees?\s*$")
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
_DEGREE_IN_EXPR = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)")
_PERCENT = re.compile(r"\\?%|\\(?:text|mbox)\s*\{\s*(?:percent|\\%|%)\s*\}|\s+percent\s*$")
_DOLLAR = re.compile(r"\\\$|^\$|\\(?:text|mbox)\s*\{\s*dollars?\s*\}|\s+dollars?\s*$")
_TEXT_CMD = r"\\(?:text|textrm|textnormal|textup|textit|textbf|mbox|mathrm|mathit|mathbf|mathsf|operatorname|rm)"
_TRAILING_TEXT_UNIT = re.compile(_TEXT_CMD + r"\s*\{\s*([A-Za-z][A-Za-z. ]*?)\s*\}(?:\s*\^\s*\{?\s*[23]\s*\}?)?\s*$")
UNIT_WORDS = frozenset("""
    m g s l h cm mm km ft in inch inches foot feet yard yards yd mile miles mi meter meters metre metres
    kilometer kilometers centimeter centimeters millimeter millimeters unit units sq square cubic
    kg mg gram grams kilogram kilograms lb lbs pound pounds ounce ounces oz ton tons
    ml liter liters litre litres gallon gallons cup cups quart quarts pint pints
    sec secs second seconds min mins minute minutes hr hrs hour hours day days week weeks
    month months year years cent cents dollar dollars mph kmh km/h m/s
    people persons students ways days times cookies apples marbles
    """.split())
_TRAILING_WORD_UNIT = re.compile(r"(?<=[\d}).])\s+([A-Za-z]{2,12}(?:\s+[A-Za-z]{2,12})?)(?:\s*\^\s*\{?\s*[23]\s*\}?)?\s*$")
_TEXT_WRAP = re.compile(_TEXT_CMD + r"\s*\{([^{}]*)\}")
_AND = re.compile(r"\s*(?:\\text\s*\{\s*(?:and|or)\s*\}|\band\b|\bor\b)\s*")
_IN_PREFIX = re.compile(r"^[a-zA-Z]\s*\\in\s*")
_COMMAS = re.compile(r"\s*,(?:\s*,)+\s*")
_SCALE_WORD = r"(hundred|thousand|million|billion|trillion)"
_TRAILING_SCALE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:" + _TEXT_CMD + r"\s*\{\s*" + _SCALE_WORD + r"\s*\}|"
                             + _SCALE_WORD + ")", re.IGNORECASE)


def _strip_delims(s: str) -> str:
    changed = True
    while changed and s:
        changed = False
        s = s.strip()
        for a, b in _DELIMS:
            if s.startswith(a) and s.endswith(b) and len(s) >= len(a) + len(b):
                s, changed = s[len(a):len(s) - len(b)], True
                break
    return s.strip()


def clean(text: str) -> tuple[str, frozenset[str]]:
    """Remove presentation-only LaTeX; return the cleaned text and its unit marks."""
    if len(text) > 4 * MAX_CHARS:
        raise ParseError(f"answer longer than {MAX_CHARS} characters")
    macro = MACRO.search(text)
    if macro:
        raise ParseError(f"a macro definition ({macro.group()}) in the answer")
    marks: set[str] = set()
    s = _strip_delims(text.strip())
    s = _REPEAT_BAR.sub(_repeating, s)
    s = _REPEAT_DOTS.sub(_dots, s)
    s = s.rstrip(" .")
    s = _strip_delims(s)
    s = _SIZING.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = s.replace("\\dbinom", "\\binom").replace("\\tbinom", "\\binom")
    s = _THOUSANDS_BRACE.sub("", s)
    s = _THOUSANDS_THIN.sub("", s)
    s = _SPACING.sub(" ", s).strip()
    s = _SCIENTIFIC.sub(r"(\1\\cdot 10^{\2})", s)
    s = _MIXED.sub(_mixed, s)
    if _TRIG.search(s):  # \sin 30^\circ: an angle inside an expression is converted to radians
        s = _DEGREE_IN_EXPR.sub(r"(\1\\pi/180)", s)
    for mark, pattern in (("degree", _DEGREE), ("percent", _PERCENT), ("dollar", _DOLLAR)):
        s, n = pattern.subn("", s)
        if n:
            marks.add(mark)
    s = s.strip()
    for _ in range(3):  # "15 \mbox{ cm}^2", "5.4 \text{ cents}", "12 square feet"
        m = _TRAILING_TEXT_UNIT.search(s)
        if m and m.start() > 0 and s[:m.start()].strip() and _unit_text(m.group(1)):
            s = s[:m.start()].strip()
            marks.add("unit")
            continue
        m = _TRAILING_WORD_UNIT.search(s)
        if m and all(w.lower() in UNIT_WORDS for w in m.group(1).split()) and s[:m.start()].strip():
            s = s[:m.start()].strip()
            marks.add("unit")
            continue
        break
    m = _TRAILING_SCALE.fullmatch(s)  # 5 \text{ million}: a scale word scales a plain number
    if m:
        s = f"{m.group(1)}\\cdot 10^{{{_SCALE[(m.group(2) or m.group(3)).lower()]}}}"
    s, n = _IN_PREFIX.subn("", s)
    if n:
        marks.add("in")
    s = _AND.sub(", ", s)
    s = _COMMAS.sub(", ", s)  # "1, 2, \text{ and } 3": the "and" after a comma adds no item
    if _THOUSANDS_PLAIN.match(s):
        s = s.replace(",", "").replace(" ", "")
    s = s.rstrip(" .,;")
    if len(s) > MAX_CHARS:
        raise ParseError(f"answer longer than {MAX_CHARS} characters")
    return s, frozenset(marks)


def _unit_text(text: str) -> bool:
    """``cm``, ``square inches``, ``marbles``: a known unit, dropped. Any other word (``or more``, ``squared``,
    ``million``) is kept, and a scale word scales while the rest make the answer unparsable."""
    words = [w.lower().strip(".") for w in text.split()]
    return bool(words) and all(w in UNIT_WORDS or (w.endswith("s") and w[:-1] in UNIT_WORDS) for w in words)


def _repeating(m: re.Match) -> str:
    """``0.1\\overline{6}`` -> ``(15/90)``: digits ``I.A`` then the period ``B`` repeated for ever."""
    whole, fixed, period = m.group(1) or "0", m.group(2), m.group(3) or m.group(4)
    num = int(whole + fixed + period) - int(whole + fixed)
    return f"({num}/{10 ** len(fixed) * (10 ** len(period) - 1)})"


def _dots(m: re.Match) -> str:
    """``0.333\\ldots`` is ``0.\\overline{3}`` when the digits end in a block written twice (``0.1666...``,
    ``0.142857142857...``); otherwise the dots only say the decimal was cut (``3.14159...``)."""
    whole, digits = m.group(1) or "0", m.group(2)
    for p in range(1, 7):
        if len(digits) >= 2 * p and digits[-p:] == digits[-2 * p:-p]:
            block, fixed = digits[-p:], digits
            while fixed.endswith(block):
                fixed = fixed[:-p]
            return _repeating(re.match(r"(\d*)\.(\d*)\\overline\{(\d+)\}()", f"{whole}.{fixed}\\overline{{{block}}}"))
    return f"{whole}.{digits}"


def _mixed(m: re.Match) -> str:
    """``2 1/2`` is the mixed number 5/2 (a proper fraction after a whole number); ``3 5/4`` is left
    as written, two numbers side by side, which does not parse."""
    whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if den == 0 or num >= den:
        return m.group()
    return f"({whole}+{num}/{den})"


def unwrap_text(s: str) -> str:
    """``\\text{abc}`` -> ``abc`` (one level at a time, innermost first)."""
    for _ in range(5):
        new = _TEXT_WRAP.sub(lambda m: m.group(1), s)
        if new == s:
            break
        s = new
    return s


# --- tokenizer --------------------------------------------------------------------------

FUNCTIONS = frozenset("""sin cos tan cot sec csc arcsin arccos arctan arccot arcsec arccsc sinh cosh tanh
    coth log ln lg exp sqrt abs""".split())
GREEK = frozenset("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu
    xi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Upsilon Phi Psi
    Omega""".split())
COMMANDS = FUNCTIONS | GREEK | frozenset("""frac sqrt pi infty infin inf cdot times div pm mp le leq ge geq lt gt
    ne neq in notin cup cap emptyset varnothing binom lfloor rfloor lceil rceil vert lvert rvert mid
    langle rangle begin end text textrm textnormal textup textit textbf mbox mathrm mathit mathbf mathsf
    boldsymbol vec bar overline operatorname rm ast star setminus approx equiv to rightarrow
    cdots ldots dots dotsc over choose prime boxed fbox""".split())
_UNICODE = {"π": "\\pi ", "∞": "\\infty ", "√": "\\sqrt ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ",
            "×": "\\times ", "÷": "\\div ", "·": "\\cdot ", "⋅": "\\cdot ", "−": "-", "–": "-",
            "∪": "\\cup ", "∩": "\\cap ", "±": "\\pm ", "∓": "\\mp ", "∈": "\\in ", "∅": "\\emptyset ",
            "θ": "\\theta ", "α": "\\alpha ", "β": "\\beta ", "φ": "\\phi ", "λ": "\\lambda ",
            "\u2009": " ", "\u00a0": " ", "\u202f": " "}
VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
          "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8),
          "⅑": (1, 9), "⅒": (1, 10)}
_VULGAR = re.compile(r"(\d+)?\s*([" + "".join(VULGAR) + "])")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_ASCII_RELOPS = (("<=", "\\le "), (">=", "\\ge "), ("!=", "\\ne "))


def _vulgar(m: re.Match) -> str:
    """``2½`` is the mixed number 5/2 (not 2 times a half); a lone ``½`` is 1/2."""
    num, den = VULGAR[m.group(2)]
    return f"({m.group(1)}+{num}/{den})" if m.group(1) else f"({num}/{den})"
_UNICODE_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?)")
_TOKEN = re.compile(r"""
    (?P<num>\d+(?:\.\d+)?|\.\d+)
  | (?P<cmd>\\[a-zA-Z]+|\\[{}|]|\\\\)
  | (?P<letters>[a-zA-Z]+)
  | (?P<op>[-+*/^_!=<>,()\[\]{}|&;:'])
  | (?P<space>\s+)
""", re.VERBOSE)


def tokenize(s: str) -> list[Token]:
    """Split cleaned answer text into whitelisted tokens; anything else raises `ParseError`."""
    s = s.replace("**", "^")  # Python's power operator, as replies sometimes write it
    for ascii_op, cmd in _ASCII_RELOPS:  # x != 3 is x \ne 3, not x! = 3
        s = s.replace(ascii_op, cmd)
    if not s.isascii():
        s = _VULGAR.sub(_vulgar, s)
        s = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", s)  # x¹⁰ is x^{10}
    if any(c in _UNICODE for c in s):
        s = _UNICODE_ROOT.sub(r"\\sqrt{\1}", s)  # √113 is the root of 113, not (√1)13
        s = "".join(_UNICODE.get(c, c) for c in s)
    tokens: list[Token] = []
    pos, n = 0, len(s)
    while pos < n:
        m = _TOKEN.match(s, pos)
        if m is None:
            raise ParseError(f"unexpected character {s[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group()
        if kind == "space":
            continue
        if kind == "op" and text == "'":
            raise ParseError("unexpected character \"'\"")
        if kind == "cmd":
            name = text[1:]
            if name.isalpha() and name not in COMMANDS:
                raise ParseError(f"unknown command {text}")
            if name in ("begin", "end"):
                m2 = re.match(r"\s*\{\s*([a-zA-Z]+\*?)\s*\}", s[pos:])
                if m2 is None:
                    raise ParseError(f"{text} without an environment name")
                pos += m2.end()
                text = f"{text}{{{m2.group(1)}}}"
        if kind == "letters":
            if text in FUNCTIONS or text in ("pi", "infty", "inf", "oo", "infinity") or (len(text) > 2 and text.lower() in _WORDS):
                tokens.append(Token("word", text))
            elif len(text) > 3:
                tokens.append(Token("word", text))
            else:
                tokens.extend(Token("letter", c) for c in text)
            continue
        tokens.append(Token("num" if kind == "num" else kind, text))
    return tokens


_WORDS = FUNCTIONS | UNIT_WORDS | frozenset("and or no none yes true false even odd undefined".split())
