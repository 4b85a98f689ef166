"""Which named queues a :class:`~jobledger.Worker`'s threads serve (``queues=``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._errors import ConfigError
from ._limits import check_queue_name

__all__ = ["serving_slots"]


def serving_slots(
    queues: Iterable[str] | Mapping[str, int] | None, concurrency: int
) -> tuple[frozenset[str] | None, list[frozenset[str] | None]]:
    """The queues a Worker serves (None: every queue) and, per thread, the queues that
    thread claims from. None or a list of names: ``concurrency`` threads, each serving
    them all. A dict of name -> slots: that many threads for each queue, each serving its
    own (``concurrency`` is then the sum of the slots, and must be left at 1)."""
    if queues is None:
        return None, [None] * concurrency
    if isinstance(queues, str):
        queues = [queues]
    if isinstance(queues, Mapping):
        if concurrency != 1:
            raise ConfigError(
                "give a Worker's concurrency as queues={name: slots} or as concurrency=, "
                f"not both (got concurrency={concurrency} and queues={dict(queues)!r})"
            )
        slots: list[frozenset[str] | None] = []
        for name, n in queues.items():
            check_queue_name(name)
            if type(n) is not int or n < 1:
                raise ConfigError(f"queue {name!r} needs at least 1 slot, got {n!r}")
            slots += [frozenset([name])] * n
        if not slots:
            raise ConfigError("a Worker's queues= names no queue")
        return frozenset(queues), slots
    names = frozenset(check_queue_name(name) for name in queues)
    if not names:
        raise ConfigError("a Worker's queues= names no queue")
    return names, [names] * concurrency
