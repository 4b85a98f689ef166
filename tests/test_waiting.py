"""The wait policy (``_waiting.py``) without storage: the pauses between reads, and a
wait woken by its listener alone."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from jobledger import MAX_RESULT_BYTES, InvalidPayload
from jobledger._inputs import check_result_size
from jobledger._job_fields import JobStatus
from jobledger._job_record import JobRecord
from jobledger._waiting import FinishWatch, _Pauses, wait_sync

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def test_a_wait_that_nothing_notifies_reads_again_after_pauses_doubling_to_the_poll():
    pauses = _Pauses(1.0, notified=False)
    assert [pauses.next() for _ in range(10)] == [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0, 1.0
    ]  # fmt: skip
    assert [_Pauses(0.005, notified=False).next() for _ in range(2)] == [0.005, 0.005]
    notified = _Pauses(30.0, notified=True)
    assert [notified.next() for _ in range(3)] == [30.0, 30.0, 30.0]


def _record(status: JobStatus) -> JobRecord:
    record = JobRecord.queued(
        "j", "T", {}, priority=0, max_attempts=1, created="2025-01-20T10:30:00.000Z", run_after=None
    )
    return record.evolve(status=status, result="done" if status is JobStatus.COMPLETED else None)


def test_a_notified_wait_is_ended_by_its_listener_not_by_a_poll():
    watch = FinishWatch()
    callbacks: list[Callable[[str | None], None]] = []
    stopped = threading.Event()

    def listen(callback: Callable[[str | None], None]) -> Callable[[], None]:
        callbacks.append(callback)
        return stopped.set

    state = [JobStatus.RUNNING]
    reads = threading.Semaphore(0)

    def read() -> JobRecord:
        reads.release()
        return _record(state[0])

    got: list[object] = []
    thread = threading.Thread(
        target=lambda: got.append(
            wait_sync("j", read, watch, listen, timeout=WAIT, poll=3600, where="here")
        )
    )
    thread.start()
    assert reads.acquire(timeout=WAIT)  # read Running: it waits an hour, or a wake-up
    callbacks[0]("other-job")  # not its job: no read
    callbacks[0](None)  # any job: it reads again
    assert reads.acquire(timeout=WAIT)
    state[0] = JobStatus.COMPLETED
    callbacks[0]("j")
    thread.join(WAIT)
    assert got == ["done"]
    assert len(callbacks) == 1  # one listener for the queue, started by the first wait
    watch.close()
    assert stopped.is_set()


def test_a_results_size_is_its_compact_utf8_json():
    # Two bytes a character in UTF-8 (six in json.dumps's ASCII form): the limit is the
    # stored size, so this result of exactly MAX_RESULT_BYTES fits...
    text = "é" * ((MAX_RESULT_BYTES - 2) // 2)
    check_result_size(text, '"' + "\\u00e9" * len(text) + '"', "the result", "j")
    # ...and one character more does not.
    longer = text + "é"
    with pytest.raises(InvalidPayload, match=r"job j\) takes 16,777,218 bytes"):
        check_result_size(longer, '"' + "\\u00e9" * len(longer) + '"', "the result", "j")
