"""Corrupt state files: set aside, logged, and replaced by the last good generation.

Every way a file can be bad (truncated anywhere, garbage, empty, not UTF-8, JSON of the
wrong shape, a record of another set) is handled the same way on open: the bad file is
renamed ``<name>.corrupt-<stamp>`` (bytes kept), a warning names the files, and the state
comes from ``<name>.json.bak``; when that is bad or missing too, the set starts empty.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

import jobledger
from jobledger._taskset_record import TaskSetRecord

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"]
STAMP = "20250120T103000000Z"  # the FakeClock's now, as set_aside writes it


def make(root: Path, clock) -> jobledger.JobState:
    return jobledger.JobState(root, timezone="UTC", durability="flush", clock=clock)


def three_generations(root: Path, clock) -> Path:
    """A set saved three times: the file has quiz-1 and daily-check-in, its .bak only the
    first. Returns the state file's path."""
    ts = make(root, clock).taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    clock.advance(seconds=1)
    ts.mark_done("daily-check-in")
    clock.advance(seconds=1)
    ts.mark_done("quiz-1")
    clock.set("2025-01-20T10:30:00+00:00")
    path = root / ACCOUNT / f"{TYPE}-{DATE}.json"
    assert json.loads(path.read_text("utf-8"))["completed"] == ["daily-check-in", "quiz-1"]
    assert json.loads(bak_of(path).read_text("utf-8"))["completed"] == ["daily-check-in"]
    return path


def bak_of(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def aside_of(path: Path) -> Path:
    return path.with_name(f"{path.name}.corrupt-{STAMP}")


def warnings(caplog) -> str:
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name == "jobledger" and r.levelno >= logging.WARNING
    )


def assert_restored_from_bak(path: Path, bad: bytes, caplog, ts) -> None:
    aside = aside_of(path)
    assert aside.read_bytes() == bad, "the bad bytes are kept, set aside"
    text = warnings(caplog)
    assert str(path) in text
    assert str(aside) in text
    assert str(bak_of(path)) in text
    assert ts.completed == ["daily-check-in"]
    assert ts.remaining == PLAN[1:]
    # The restored main file parses as it is, and equals the good generation.
    doc = json.loads(path.read_text("utf-8"))
    assert doc == json.loads(bak_of(path).read_text("utf-8"))
    assert doc["completed"] == ["daily-check-in"]


def test_every_truncation_of_a_state_file_is_recovered(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    good = three_generations(tmp_path / "proto", clock).read_bytes()
    recovered = intact = 0
    for offset in range(len(good)):
        caplog.clear()
        path = three_generations(tmp_path / f"cut{offset}", clock)
        bad = good[:offset]
        path.write_bytes(bad)
        ts = make(path.parent.parent, clock).taskset(ACCOUNT, TYPE, date=DATE)
        try:
            TaskSetRecord.loads(bad)
        except ValueError:
            assert_restored_from_bak(path, bad, caplog, ts)
            recovered += 1
        else:  # only the final newline was cut: still a complete document
            assert ts.completed == ["daily-check-in", "quiz-1"]
            assert warnings(caplog) == ""
            intact += 1
    assert recovered == len(good) - 1
    assert intact == 1


def test_random_garbage_is_recovered(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    rng = random.Random(4242)
    for i in range(40):
        caplog.clear()
        path = three_generations(tmp_path / f"g{i}", clock)
        bad = rng.randbytes(rng.randint(1, 600))
        path.write_bytes(bad)
        ts = make(path.parent.parent, clock).taskset(ACCOUNT, TYPE, PLAN, date=DATE)
        assert_restored_from_bak(path, bad, caplog, ts)


def test_random_byte_flips_in_a_good_file(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    rng = random.Random(99)
    good = three_generations(tmp_path / "proto", clock).read_bytes()
    for i in range(60):
        caplog.clear()
        path = three_generations(tmp_path / f"f{i}", clock)
        bad = bytearray(good)
        pos = rng.randrange(len(bad))
        bad[pos] = rng.choice(b'{}[]",:\x00\xff')
        path.write_bytes(bytes(bad))
        ts = make(path.parent.parent, clock).taskset(ACCOUNT, TYPE, date=DATE)
        try:
            record: TaskSetRecord | None = TaskSetRecord.loads(bytes(bad))
        except ValueError:
            record = None
        if record is not None and record.key == (ACCOUNT, TYPE, DATE):
            # A flip inside a task name: still a record of this set, used as it is.
            assert ts.completed == record.completed
            assert warnings(caplog) == ""
        else:  # broken JSON, or a flip in the account, type or date
            assert_restored_from_bak(path, bytes(bad), caplog, ts)


BAD_FILES = {
    "empty": b"",
    "whitespace": b"  \n",
    "garbage": b"\x00\x01\x02garbage\xfe",
    "invalid utf-8": b'{"date": "2025-01-20", "account": "\xff\xfe", "type": "daily-set"}',
    "utf-16": json.dumps({"date": DATE}).encode("utf-16"),
    "a list": b'["daily-check-in", "quiz-1"]',
    "null": b"null",
    "a number": b"42",
    "a string": b'"daily-set"',
    "missing keys": b"{}",
    "no account": json.dumps({"date": DATE, "type": TYPE}).encode(),
    "date not a date": json.dumps(
        {"date": "2025-13-45", "account": ACCOUNT, "type": TYPE}
    ).encode(),
    "date a number": json.dumps({"date": 20250120, "account": ACCOUNT, "type": TYPE}).encode(),
    "completed a string": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "completed": "quiz-1"}
    ).encode(),
    "completed of numbers": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "completed": [1, 2]}
    ).encode(),
    "remaining an object": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "remaining": {"quiz-2": True}}
    ).encode(),
    "lastUpdate a number": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "lastUpdate": 17}
    ).encode(),
    "failures a list": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "failures": ["quiz-2"]}
    ).encode(),
    "failure entry malformed": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "failures": {"quiz-2": {"n": 1}}}
    ).encode(),
    "progress not numbers": json.dumps(
        {
            "date": DATE,
            "account": ACCOUNT,
            "type": TYPE,
            "progress": {"s": {"done": "a", "total": 3}},
        }
    ).encode(),
    "running a list": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": TYPE, "running": []}
    ).encode(),
    "another account": json.dumps({"date": DATE, "account": "other@x.com", "type": TYPE}).encode(),
    "another type": json.dumps(
        {"date": DATE, "account": ACCOUNT, "type": "mobile-search"}
    ).encode(),
    "another date": json.dumps({"date": "2025-01-21", "account": ACCOUNT, "type": TYPE}).encode(),
}


@pytest.mark.parametrize("bad", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_a_bad_file_is_set_aside_and_the_previous_generation_used(tmp_path, clock, caplog, bad):
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    path.write_bytes(bad)
    ts = make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    assert_restored_from_bak(path, bad, caplog, ts)
    # And the set carries on from there.
    ts.mark_done("quiz-1")
    assert json.loads(path.read_text("utf-8"))["completed"] == ["daily-check-in", "quiz-1"]


@pytest.mark.parametrize("bak_bad", [b"", b"{not json", b"[]"], ids=["empty", "broken", "list"])
def test_when_the_bak_is_bad_too_the_set_starts_empty(tmp_path, clock, caplog, bak_bad):
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    path.write_bytes(b'{"date": "2025-01-20", "acc')
    bak_of(path).write_bytes(bak_bad)
    ts = make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    assert ts.completed == []
    assert ts.remaining == PLAN
    # Both bad files are kept, set aside, and named.
    aside = aside_of(path)
    bak_aside = bak_of(path).with_name(f"{bak_of(path).name}.corrupt-{STAMP}")
    assert aside.read_bytes() == b'{"date": "2025-01-20", "acc'
    assert bak_aside.read_bytes() == bak_bad
    text = warnings(caplog)
    for p in (path, aside, bak_of(path), bak_aside):
        assert str(p) in text
    assert "starting it empty" in text
    # The plan was saved anew: the main file parses.
    doc = json.loads(path.read_text("utf-8"))
    assert doc["completed"] == []
    assert doc["remaining"] == PLAN


def test_when_the_bak_is_missing_the_set_starts_empty(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    bak_of(path).unlink()
    path.write_bytes(b"\x00" * 64)
    state = make(tmp_path / "state", clock)
    ts = state.taskset(ACCOUNT, TYPE, date=DATE)  # no plan: nothing is saved yet
    assert ts.completed == []
    assert ts.remaining == []
    assert aside_of(path).read_bytes() == b"\x00" * 64
    text = warnings(caplog)
    assert str(path) in text
    assert str(aside_of(path)) in text
    assert "No good generation" in text
    assert "starting it empty" in text
    assert not path.exists()
    ts.mark_done("quiz-1")
    assert json.loads(path.read_text("utf-8"))["completed"] == ["quiz-1"]


def test_a_second_corruption_gets_its_own_aside_name(tmp_path, clock, caplog):
    path = three_generations(tmp_path / "state", clock)
    path.write_bytes(b"first")
    make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, date=DATE)
    path.write_bytes(b"second")
    make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, date=DATE)  # same clock stamp
    asides = sorted(p.name for p in path.parent.iterdir() if ".corrupt-" in p.name)
    assert len(asides) == 2
    contents = {(path.parent / a).read_bytes() for a in asides}
    assert contents == {b"first", b"second"}


def test_a_corrupt_bak_alone_is_left_and_replaced_by_the_next_save(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    bak_of(path).write_bytes(b"garbage")
    ts = make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, date=DATE)
    assert ts.completed == ["daily-check-in", "quiz-1"]
    assert warnings(caplog) == ""  # the main file is fine: the .bak is not even read
    ts.mark_done("poll-1")
    assert json.loads(bak_of(path).read_text("utf-8"))["completed"] == [
        "daily-check-in",
        "quiz-1",
    ]


def test_records_and_doctor_recover_a_corrupt_file_too(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    path.write_bytes(b"{")
    findings = make(tmp_path / "state", clock).doctor(repair=True)
    assert [(f.kind, f.where) for f in findings if f.kind == "corrupt"] == [("corrupt", str(path))]
    assert json.loads(path.read_text("utf-8"))["completed"] == ["daily-check-in"]
    assert aside_of(path).read_bytes() == b"{"
    (record,) = make(tmp_path / "state", clock).records()
    assert record.completed == ["daily-check-in"]


def test_a_running_set_whose_file_is_corrupted_keeps_what_it_completed(tmp_path, clock, caplog):
    # The file breaks under a running process (a disk error, a hand edit): its next save
    # recovers the last good generation, and must not forget what this process completed
    # (and knows it completed) since then. Otherwise those tasks would run again.
    caplog.set_level(logging.WARNING, logger="jobledger")
    path = three_generations(tmp_path / "state", clock)
    ts = make(tmp_path / "state", clock).taskset(ACCOUNT, TYPE, date=DATE)
    ts.mark_done("poll-1")
    path.write_bytes(b"\x00garbage")
    ts.mark_done("quiz-2")
    assert ts.completed == ["daily-check-in", "quiz-1", "poll-1", "quiz-2"]
    doc = json.loads(path.read_text("utf-8"))
    assert doc["completed"] == ["daily-check-in", "quiz-1", "poll-1", "quiz-2"]
    assert doc["remaining"] == ["search-desktop"]
    assert str(path) in warnings(caplog)
