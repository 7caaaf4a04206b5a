"""The value codec and framing, without Docker: what the harness can receive from a program."""

from __future__ import annotations

import collections
import math
import os

import pytest

from reasoner.sandbox.inside import wire
from reasoner.sandbox.inside.stdio import same_tokens


class Yes:
    def __eq__(self, other):
        return True


def roundtrip(value, to_ref=None):
    return wire.decode(wire.unpack(wire.pack(wire.encode(value, to_ref))[wire.HEADER:]), lambda i, t: ("ref", i, t))


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2 ** 4000, -(3 ** 9000), 1.5, -0.0, "", "é\u0000\udcff", [], [1, [2, [3]]],
    (), (1, "a"), {1: "a", (1, 2): [3]}, set(), {1, 2}, frozenset({"x"}), b"\x00\xff", bytearray(b"ab"),
    1 + 2j, range(1, 10, 3),
])
def test_plain_values_roundtrip_exactly(value):
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_non_finite_floats():
    back = roundtrip([math.inf, -math.inf, math.nan])
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2])


def test_subclasses_cross_as_their_base_type():
    Point = collections.namedtuple("Point", "x y")
    back = roundtrip([Point(1, 2), collections.Counter("aab"), collections.OrderedDict(a=1)], to_ref=None)
    assert back == [(1, 2), {"a": 2, "b": 1}, {"a": 1}]
    assert [type(v) for v in back] == [tuple, dict, dict]


def test_iterators_are_materialised_once():
    back = roundtrip((i for i in range(3)))
    assert iter(back) is back and list(back) == [0, 1, 2]


def test_other_objects_become_opaque_refs_on_the_program_side_only():
    refs = []

    def to_ref(obj):
        refs.append(obj)
        return wire.Ref(len(refs), type(obj).__name__)
    yes = Yes()
    assert roundtrip([yes], to_ref) == [("ref", 1, "Yes")]
    with pytest.raises(TypeError):
        wire.encode(yes)  # the harness side has no to_ref: only plain data goes to a program


@pytest.mark.parametrize("data", [
    {"$": "eval", "v": "1"}, {"x": 1}, {"$": "tuple", "v": 3}, {"$": "set", "v": [[1]]}, {"$": "ref", "v": 1},
    {"$": "float", "v": "1e400"}, {"$": "bytes", "v": "***"}, {"$": "range", "v": [1, "2", 3]},
])
def test_malformed_values_are_rejected(data):
    with pytest.raises((wire.WireError, ValueError)):
        wire.decode(data)


def test_deep_nesting_is_rejected():
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.decode(deep)
    with pytest.raises(wire.WireError):
        wire.encode(deep)


def test_frames_over_a_pipe():
    r, w = os.pipe()
    try:
        wire.write_frame(w, {"a": [1, "é"]})
        wire.write_frame(w, None)
        os.close(w)
        assert wire.read_frame(r) == {"a": [1, "é"]}
        assert wire.read_frame(r) is None  # a frame holding null ...
        assert wire.read_frame(r) is None  # ... and the end of the stream
    finally:
        os.close(r)


def test_oversized_and_truncated_frames():
    r, w = os.pipe()
    try:
        os.write(w, (10 ** 9).to_bytes(4, "big"))
        with pytest.raises(wire.WireError):
            wire.read_frame(r, limit=1000)
        os.write(w, (10).to_bytes(4, "big") + b"{}")
        os.close(w)
        with pytest.raises(wire.WireError):
            wire.read_frame(r)
    finally:
        os.close(r)


@pytest.mark.parametrize("got, expected, same", [
    (b"3\n", b"3", True), (b"1 2\n3", b"1\n2 3\n", True), (b"  x\r\n\n", b"x", True),
    (b"3", b"4", False), (b"", b"0", False), (b"1 2", b"12", False), (b"", b"", True),
])
def test_whitespace_tolerant_comparison(got, expected, same):
    assert same_tokens(got, expected) is same


def test_clean_details_caps_and_makes_valid_utf8():
    from reasoner.sandbox.inside.wire import MAX_TEXT, clean_details, clean_text
    assert clean_text("ok \ud800!") == "ok \ufffd\ufffd\ufffd!"
    assert clean_text("x" * 10, 4) == "xxxx... [6 more characters]"
    import json
    huge = clean_details({"error": "y" * (30 << 20), "list": ["\udfff" * 100] * 10_000, 1: float("nan")})
    text = json.dumps(huge, ensure_ascii=False)
    assert len(text) <= MAX_TEXT and text.encode("utf-8")
    assert huge["error"].startswith("yyy") and huge["1"] == "nan"
