"""Safe file names: readable where possible, reversible always, never outside the folder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobledger import InvalidNameError
from jobledger.backends.files._names import decode, encode, inside

_WINDOWS_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


@pytest.mark.parametrize("name", ["user@email.com", "daily-set", "tenant 42", "Zoë_ü+1"])
def test_ordinary_names_stay_readable(name):
    assert encode(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("../x", "%2E.%2Fx"),
        ("a/b", "a%2Fb"),
        ("a\\b", "a%5Cb"),
        ("CON", "%43ON"),
        ("nul.txt", "%6Eul.txt"),
        ("com1", "%63om1"),
        ("trailing.", "trailing%2E"),
        ("trailing ", "trailing%20"),
        ("100%", "100%25"),
        ("%41", "%2541"),
        ("tab\there", "tab%09here"),
        (".hidden", "%2Ehidden"),
    ],
)
def test_unsafe_names_are_encoded(name, expected):
    assert encode(name) == expected
    assert decode(expected) == name


@pytest.mark.parametrize(
    "name", ["0f8fad5b-d9cb-469f-a165-70867728950e", "a.b.c", "x" * 180, "LPT", "COM10"]
)
def test_plain_names_are_their_own_file_names(name):
    # The one-match short cut for letters, digits, "_", "-" and inner dots.
    assert encode(name) == name


def test_refused_names():
    with pytest.raises(InvalidNameError, match="too long"):
        encode("x" * 181)
    with pytest.raises(InvalidNameError, match="account"):
        encode("", "account")
    with pytest.raises(InvalidNameError, match="string"):
        encode(7)
    with pytest.raises(InvalidNameError, match="too long"):
        encode("x" * 500)


@given(st.text(min_size=1, max_size=60))
def test_encoding_is_reversible_and_portable(name):
    try:
        encoded = encode(name)
    except InvalidNameError:
        return  # lone surrogates or too long: refused, never written
    assert decode(encoded) == name
    assert not (set(encoded) & _WINDOWS_FORBIDDEN)
    assert encoded not in (".", "..")
    assert not encoded.startswith(".")
    assert not encoded.endswith((".", " "))


def test_inside_refuses_escapes(tmp_path):
    assert inside(str(tmp_path), "a", "b.json").startswith(str(tmp_path))
    with pytest.raises(InvalidNameError, match="leave"):
        inside(str(tmp_path), "..", "x.json")
