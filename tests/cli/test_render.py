"""The CLI's formatting helpers."""

from __future__ import annotations

import pytest

from jobledger.cli._render import (
    human_count,
    human_seconds,
    human_size,
    percent,
    short_time,
    signed_percent,
)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0KB"),
        (1536, "1.5KB"),
        (1024 * 1024 - 1, "1.0MB"),  # would round to 1024.0KB
        (5 * 1024**2 + 512 * 1024, "5.5MB"),
        (int(2.3 * 1024**3), "2.3GB"),
        (3 * 1024**4, "3072.0GB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_other_formats() -> None:
    assert human_count(1247) == "1,247"
    assert human_count(7) == "7"
    assert human_seconds(0.25) == "0.25s"
    assert human_seconds(12.34) == "12.3s"
    assert human_seconds(245) == "4m05s"
    assert human_seconds(3720) == "1h02m"
    assert percent(None) == "-"
    assert percent(0.856) == "86%"
    assert signed_percent(0.12) == "+12%"
    assert signed_percent(-0.05) == "-5%"
    assert signed_percent(None) == "-"
    assert short_time("2025-01-20T10:30:00.000Z") == "2025-01-20T10:30:00Z"
    assert short_time(None) == "-"
