"""Frames and values that cross process boundaries. Standard library only: this module runs on
the host and, shipped at container start, inside the container.

Frames: a 4-byte big-endian length, then that many bytes of ASCII JSON.

Values (between the test harness and the program under test) are *tagged JSON*: ``None``,
``bool``, ``int``, finite ``float``, ``str`` and ``list`` are plain JSON; every other value is
an object ``{"$": tag, "v": ...}``. Decoding only ever builds these exact built-in types (or an
opaque `Ref` to an object that stays in the program's process), so no value the program
returns can carry code into the harness: an ``__eq__`` that always says ``True`` cannot cross.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import time
import types

HEADER = 4
MAX_FRAME = 64 << 20  # a frame larger than this is a protocol violation
MAX_DEPTH = 200
MAX_ITEMS = 1_000_000  # elements materialised from one iterator
MAX_TEXT = 64 << 10   # characters of a verdict's details (as JSON), and of any one string in them
MAX_DETAIL_ITEMS = 1000


class WireError(Exception):
    """A malformed or oversized frame or value."""


def pack(obj) -> bytes:
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    if len(data) > MAX_FRAME:
        raise WireError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    return len(data).to_bytes(HEADER, "big") + data


def unpack(data: bytes):
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"bad frame: {exc}") from None


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """Read exactly ``n`` bytes; None on EOF before the first byte, WireError on EOF inside."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("read timed out")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise WireError("end of stream inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_FRAME, deadline: float | None = None):
    """The next frame's value from ``fd``, or None at end of stream."""
    head = read_exact(fd, HEADER, deadline)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > limit:
        raise WireError(f"frame of {size} bytes exceeds {limit}")
    body = read_exact(fd, size, deadline) if size else b""
    if body is None:
        raise WireError("end of stream inside a frame")
    return unpack(body)


def write_frame(fd: int, obj) -> None:
    data = memoryview(pack(obj))
    while data:
        data = data[os.write(fd, data):]


class Ref:
    """An object that lives in the program's process, named by a number. The harness never
    compares, hashes or converts it through the program's code."""

    __slots__ = ("id", "type")

    def __init__(self, id: int, type: str):
        self.id, self.type = id, type


# ---- encoding (either side) -------------------------------------------------------------------

def encode(value, to_ref=None, depth: int = 0):
    """``value`` as tagged JSON. Subclasses of plain types cross as their base type, iterators
    as the list of their items; other objects become ``ref`` tags through ``to_ref(value) -> Ref``
    (the program's side); without ``to_ref`` they are a TypeError."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if abs(value).bit_length() <= 4000 else {"$": "bigint", "v": hex(value)}
    if t is float:
        return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
    if t is list:
        return [encode(v, to_ref, depth + 1) for v in value]
    if t is tuple:
        return {"$": "tuple", "v": [encode(v, to_ref, depth + 1) for v in value]}
    if t is dict:
        return {"$": "dict", "v": [[encode(k, to_ref, depth + 1), encode(v, to_ref, depth + 1)]
                                   for k, v in value.items()]}
    if t is set or t is frozenset:
        return {"$": t.__name__, "v": [encode(v, to_ref, depth + 1) for v in value]}
    if t is bytes or t is bytearray:
        return {"$": t.__name__, "v": base64.b64encode(bytes(value)).decode("ascii")}
    if t is complex:
        return {"$": "complex", "v": [encode(value.real), encode(value.imag)]}
    if t is range:
        return {"$": "range", "v": [value.start, value.stop, value.step]}
    if t is Ref:
        return {"$": "ref", "v": value.id}
    return _encode_other(value, to_ref or _no_ref, depth)


def _no_ref(value) -> Ref:
    raise TypeError(f"a {type(value).__name__} cannot be passed to the program (plain data only)")


def _encode_other(value, to_ref, depth):
    # Subclasses of plain types (namedtuple, Counter, IntEnum, str subclasses ...) cross as their
    # base type: the conversion runs here, on the program's side, so what crosses is plain data.
    for base in (int, float, str, bytes, complex):
        if isinstance(value, base):
            return encode(base(value), to_ref, depth + 1)
    for base in (list, tuple, dict, set, frozenset):
        if isinstance(value, base):
            return encode(base(value), to_ref, depth + 1)
    if _is_iterator(value):
        items = []
        for item in value:
            items.append(encode(item, to_ref, depth + 1))
            if len(items) > MAX_ITEMS:
                raise WireError("iterator too long")
        return {"$": "iter", "v": items}
    ref = to_ref(value)
    return {"$": "ref", "v": ref.id, "t": ref.type}


def _is_iterator(value) -> bool:
    return isinstance(value, (types.GeneratorType, map, filter, zip, enumerate, reversed)) or (
        type(value).__name__.endswith("iterator") and type(value).__module__ == "builtins")


# ---- decoding (harness side: only exact built-in types come out) -------------------------------

_SCALAR_TAGS = ("float", "bigint", "bytes", "bytearray", "complex", "range")


def decode(data, from_ref=None, depth: int = 0):
    """Tagged JSON back to a value. ``from_ref(id, type) -> object`` resolves ``ref`` tags."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    t = type(data)
    if data is None or t is bool or t is int or t is float or t is str:
        return data
    if t is list:
        return [decode(v, from_ref, depth + 1) for v in data]
    if t is not dict or "$" not in data:
        raise WireError(f"untagged {t.__name__} in value")
    tag, v = data["$"], data.get("v")
    try:
        if tag == "tuple":
            return tuple(decode(x, from_ref, depth + 1) for x in _list(v))
        if tag == "dict":
            out = {}
            for pair in _list(v):
                key, val = _list(pair)
                out[decode(key, from_ref, depth + 1)] = decode(val, from_ref, depth + 1)
            return out
        if tag == "set":
            return {decode(x, from_ref, depth + 1) for x in _list(v)}
        if tag == "frozenset":
            return frozenset(decode(x, from_ref, depth + 1) for x in _list(v))
        if tag == "iter":
            return iter([decode(x, from_ref, depth + 1) for x in _list(v)])
        if tag == "ref":
            if from_ref is None or type(v) is not int:
                raise WireError("unexpected ref")
            return from_ref(v, str(data.get("t", "object"))[:100])
        if tag in _SCALAR_TAGS:
            return _scalar(tag, v)
    except TypeError as exc:  # e.g. an unhashable dict key or set element
        raise WireError(f"bad {tag}: {exc}") from None
    raise WireError(f"unknown tag {tag!r}")


def _scalar(tag, v):
    if tag == "float" and v in ("inf", "-inf", "nan"):
        return float(v)
    if tag == "bigint" and type(v) is str and len(v) < 1 << 20:
        return int(v, 16)
    if tag in ("bytes", "bytearray") and type(v) is str:
        raw = base64.b64decode(v.encode("ascii"), validate=True)
        return raw if tag == "bytes" else bytearray(raw)
    if tag == "complex":
        re_, im = _list(v)
        if type(re_) in (int, float) and type(im) in (int, float):
            return complex(re_, im)
        return complex(decode(re_), decode(im))
    if tag == "range" and type(v) is list and len(v) == 3 and all(type(x) is int for x in v):
        return range(*v)
    raise WireError(f"bad {tag} value")


def _list(v) -> list:
    if type(v) is not list:
        raise WireError("expected a list")
    return v


# ---- program-derived text leaving the container -------------------------------------------------

def clean_text(text, limit: int = MAX_TEXT) -> str:
    """``text`` as a string of at most ``limit`` characters (plus a note of how many were cut)
    that is valid UTF-8: lone surrogates become U+FFFD."""
    if type(text) is not str:
        text = repr(text) if text is not None else ""
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def clean(value, limit: int = MAX_TEXT, depth: int = 0, items: int = MAX_DETAIL_ITEMS):
    """Plain JSON data (dicts with string keys, lists, scalars) with every string `clean_text`
    and at most ``items`` entries in each dict and list."""
    t = type(value)
    if value is None or t is bool or t is int or t is float:
        return value if t is not float or math.isfinite(value) else repr(value)
    if t is str:
        return clean_text(value, limit)
    if depth >= 8:
        return clean_text(repr(value)[:limit], limit)
    if t is dict:
        return {clean_text(k, 200): clean(v, limit, depth + 1, items) for k, v in list(value.items())[:items]}
    if t in (list, tuple):
        return [clean(v, limit, depth + 1, items) for v in value[:items]]
    return clean_text(str(value), limit)


def clean_details(details) -> dict:
    """A verdict's details, `clean` and at most `MAX_TEXT` characters as JSON: strings are cut
    shorter and lists and dicts trimmed until it fits."""
    if type(details) is not dict:
        details = {"error": details}
    limit, items = MAX_TEXT, MAX_DETAIL_ITEMS
    while True:
        out = clean(details, limit, 0, items)
        if len(json.dumps(out, ensure_ascii=False)) <= MAX_TEXT:
            return out
        if limit < 64:
            return {"error": "the verdict's details were too large", "truncated": True}
        limit, items = limit // 4, max(8, items // 4)
