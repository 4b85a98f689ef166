"""Jobs per named queue as the dashboard shows them (the overview and /metrics)."""

from __future__ import annotations

from .._queue_pages import LivePage

__all__ = ["counts_by_queue"]


def counts_by_queue(page: LivePage) -> dict[str, dict[str, int]]:
    """Jobs per queue, then per status, from a page's bounded counts (an empty queue
    shows as ``default`` with none)."""
    return page.by_queue or {"default": dict(page.counts)}
