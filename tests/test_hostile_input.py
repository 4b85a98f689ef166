"""The input checks of ``jobledger._inputs``: the depth limit is exact and checked without
recursion, paths name the offending part, names and error texts are handled as documented.

(The same checks through the public API, on both backends: tests/contract/test_hostile_input.py.)
"""

from __future__ import annotations

import collections
import datetime as dt
import sys

import pytest

from jobledger import MAX_JSON_DEPTH, InvalidNameError, InvalidPayload, _job_types
from jobledger._inputs import check_name, check_value, findable, storable_text
from jobledger._job_types import check_storable, encode_job


def nested(levels: int, make=lambda inner: {"k": inner}) -> object:
    value: object = {}
    for _ in range(levels - 1):
        value = make(value)
    return value


def test_the_depth_limit_is_exact_and_counts_the_value_itself():
    check_storable(nested(MAX_JSON_DEPTH), "v", "v")
    check_storable(nested(MAX_JSON_DEPTH, lambda x: [x]), "v", "v")
    check_storable(nested(MAX_JSON_DEPTH, lambda x: (x,)), "v", "v")
    with pytest.raises(InvalidPayload, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        check_storable(nested(MAX_JSON_DEPTH + 1), "v", "v")


def _frames() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def test_the_depth_is_checked_without_recursion():
    # Under a recursion limit far below the value's depth, only an iterative walk answers.
    deep = nested(100_000, lambda x: [x])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_frames() + 30)
    try:
        with pytest.raises(InvalidPayload, match="nested deeper than"):
            check_value(deep, "the value", "v")
    finally:
        sys.setrecursionlimit(limit)


def test_the_path_names_the_offending_part_and_is_shortened_when_long():
    value = {"a": [1, {"b": ["ok", "x\ud800"]}]}
    with pytest.raises(InvalidPayload) as caught:
        check_storable(value, "the payload of the T job", "payload")
    assert str(caught.value).startswith(
        "the payload of the T job is not JSON-serialisable: payload['a'][1]['b'][1] holds a "
        "lone surrogate '\\ud800' at character 1"
    )
    with pytest.raises(InvalidPayload, match=r"v\['k'\]\['k'\]\['k'\]\['k'\]\['k'\]\['k'\]"):
        check_value(nested(500), "the value", "v")
    with pytest.raises(InvalidPayload) as caught:
        check_value(nested(500), "the value", "v")
    assert "['k']..." in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "value, problem",
    [
        ("\ud800", "v holds a lone surrogate"),
        ({"\udcff": 1}, "the key '\\udcff' of v holds a lone surrogate"),
        ({"a": "x\x00"}, "v['a'] holds a NUL character (\\x00 at character 1)"),
        ({"a\x00": 1}, "the key 'a\\x00' of v holds a NUL character"),
        ([float("inf")], "v[0] is inf"),
        ({"a": float("nan")}, "v['a'] is nan"),
    ],
)
def test_each_unstorable_kind_is_named(value, problem):
    with pytest.raises(InvalidPayload) as caught:
        check_storable(value, "it", "v")
    assert problem in str(caught.value)
    assert "\ud800" not in str(caught.value)  # shown escaped: the message itself prints


def test_a_reference_cycle_is_named_as_such():
    looped: list[object] = [1]
    looped.append({"back": looped})
    with pytest.raises(InvalidPayload, match="contains itself"):
        check_storable(looped, "it", "v")


def test_storable_values_pass_unchanged():
    value = {"text": "café ✓", "n": [1, 2.5, True, None], "t": ("x",), 3: "int key"}
    check_storable(value, "it", "v")
    assert encode_job({"type": "T", **value})[1]["text"] == "café ✓"


def test_types_json_lacks_are_still_refused_by_the_encoder():
    with pytest.raises(InvalidPayload, match="not JSON-serialisable: Object of type set"):
        check_storable({"a": {1, 2}}, "it", "v")


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value, plain",
    [
        ({"a": [1, 2.5, "é", None, True, {"b": ("x",)}]}, True),
        ([10**599, -(10**599)], True),
        ("text", True),
        (7, True),
        ({1: "an int key, which the encoder turns into text"}, False),
        ({"a": {1, 2}}, False),
        ({"a": _Text("a str subclass")}, False),
        ({"a": [10**600]}, False),
        ({"a": dt.date(2025, 1, 1)}, False),
        (collections.OrderedDict(a=1), False),
    ],
)
def test_check_value_says_whether_the_encoder_could_refuse_the_value(value, plain):
    assert check_value(value, "it", "v") is plain


def test_a_plain_value_is_not_encoded_to_check_it(monkeypatch):
    def refuse(value: object) -> str:
        raise AssertionError(f"encoded {value!r}")

    monkeypatch.setattr(_job_types, "check_json", refuse)
    check_storable({"a": [1, "b", None, 2.5, {"c": True}]}, "it", "v")
    with pytest.raises(AssertionError, match="encoded"):
        check_storable({"a": {1}}, "it", "v")


def test_an_int_too_long_for_text_is_refused_by_the_encoder():
    digits = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
            check_storable({"n": [10**700]}, "it", "v")
    finally:
        sys.set_int_max_str_digits(digits)


def test_names():
    assert check_name("user@example.com", "account") == "user@example.com"
    assert check_name("café", "task") == "café"
    for bad in ("", None, 3, "a\x00"):
        with pytest.raises(InvalidNameError, match="account must be a non-empty string"):
            check_name(bad, "account")
    with pytest.raises(InvalidNameError, match="task 'q\\\\ud800' holds a lone surrogate"):
        check_name("q\ud800", "task")
    assert findable("a", "job id") and not findable("a\x00", "job id")
    with pytest.raises(InvalidNameError):
        findable("\ud800", "job id")


def test_error_texts_are_escaped_not_refused():
    assert storable_text("plain") == "plain"
    assert storable_text("café") == "café"
    assert storable_text("bad \udcff name\x00") == "bad \\udcff name\\x00"
