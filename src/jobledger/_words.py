"""Counts with their nouns agreeing (``1 job``, ``2 jobs``), for every message and line."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 job``, ``2 jobs``, ``1,247 task sets``: a count with its noun agreeing (``nouns``
    for an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
