"""Hostile account and type names, end to end on disk: nothing is ever written outside the
state folder, every name comes back exactly from ``keys()``, readable names stay readable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobledger

DATE = "2025-01-20"

HOSTILE = [
    "..",
    ".",
    "...",
    "../x",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "/abs",
    "C:\\Windows",
    "CON",
    "con",
    "nul.txt",
    "COM1",
    "lpt9.log",
    "AUX.",
    "tab\there",
    "new\nline",
    "esc\x1bape",
    "del\x7f",
    "trailing.",
    "trailing ",
    " leading",
    ".hidden",
    "%41",
    "100%",
    "%2E%2E",
    'a:b*c?d<e>f|g"h',
    "émoji 🎉",
    "user@email.com",
]


def files_under(top: Path) -> set[Path]:
    return {Path(folder) / name for folder, _dirs, names in os.walk(top) for name in names}


def assert_all_inside(top: Path, root: Path) -> None:
    stray = [p for p in files_under(top) if root not in p.parents]
    assert stray == [], f"written outside the state folder: {stray}"
    # Every account folder is a direct child of the root, every file one level below.
    for p in files_under(root):
        assert p.parent.parent == root, p


def test_hostile_account_and_type_names_stay_inside_and_round_trip(tmp_path, clock):
    top = tmp_path / "outer"
    root = top / "inner" / "state"
    state = jobledger.JobState(root, timezone="UTC", durability="flush", clock=clock)
    expected = set()
    for i, name in enumerate(HOSTILE):
        kind = HOSTILE[(i + 7) % len(HOSTILE)]
        ts = state.taskset(name, kind, [name, "x"], date=DATE)
        ts.mark_done(name)  # hostile task names are just data inside the file
        with ts:  # the lease file is placed safely too
            ts.mark_done("x")
        expected.add(jobledger.TaskSetKey(name, kind, DATE))
    assert_all_inside(tmp_path, root)
    assert set(state.keys()) == expected
    assert len(state.keys()) == len(HOSTILE)
    for key in expected:
        assert state.keys(key.account) == sorted(k for k in expected if k.account == key.account)
        ts = state.taskset(key.account, key.type, date=DATE)
        assert ts.completed == [key.account, "x"]
        doc = ts.record.to_json()
        assert (doc["account"], doc["type"]) == (key.account, key.type)
    # Only names the encoder made: no dot-names at the top (they are ours: temp, lock).
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_a_readable_account_is_a_readable_folder(tmp_path, clock):
    root = tmp_path / "state"
    state = jobledger.JobState(root, timezone="UTC", clock=clock)
    state.taskset("user@email.com", "daily-set", ["a"], date=DATE).mark_done("a")
    path = root / "user@email.com" / f"daily-set-{DATE}.json"
    assert json.loads(path.read_text("utf-8"))["account"] == "user@email.com"
    assert sorted(p.name for p in root.iterdir()) == ["user@email.com"]


@pytest.mark.parametrize(
    ("account", "folder"),
    [("..", "%2E%2E"), ("a/b", "a%2Fb"), ("CON", "%43ON"), ("%41", "%2541"), ("x.", "x%2E")],
)
def test_encoded_folder_names(tmp_path, clock, account, folder):
    root = tmp_path / "state"
    jobledger.JobState(root, timezone="UTC", clock=clock).taskset(account, "t", ["a"], date=DATE)
    assert [p.name for p in root.iterdir()] == [folder]


@pytest.mark.parametrize("name", ["x\x00y", "\x00", "", "\ud800lone", "x" * 400])
@pytest.mark.parametrize("where", ["account", "type"])
def test_unstorable_names_are_refused_before_any_write(tmp_path, clock, name, where):
    root = tmp_path / "state"
    state = jobledger.JobState(root, timezone="UTC", clock=clock)
    args = {"account": "a", "type": "t", where: name}
    with pytest.raises(jobledger.InvalidNameError) as info:
        ts = state.taskset(args["account"], args["type"], ["a"], date=DATE)
        ts.mark_done("a")
    assert where in str(info.value)
    assert files_under(tmp_path) == set()


def test_a_nul_task_name_is_refused(tmp_path, clock):
    ts = jobledger.JobState(tmp_path, timezone="UTC", clock=clock).taskset("a", "t", date=DATE)
    with pytest.raises(jobledger.InvalidNameError, match="task"):
        ts.mark_done("x\x00y")
    assert ts.completed == []


def test_a_symlinked_account_folder_pointing_outside_is_refused(tmp_path, clock):
    root = tmp_path / "state"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root.mkdir()
    (root / "victim").symlink_to(outside)
    state = jobledger.JobState(root, timezone="UTC", clock=clock)
    with pytest.raises(jobledger.InvalidNameError, match="leave the folder"):
        state.taskset("victim", "t", ["a"], date=DATE)
    assert list(outside.iterdir()) == []


names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(account=names, kind=names)
def test_any_name_round_trips_and_stays_inside(tmp_path_factory, account, kind):
    top = tmp_path_factory.mktemp("names")
    root = top / "state"
    state = jobledger.JobState(root, timezone="UTC", durability="flush")
    state.taskset(account, kind, ["a"], date=DATE).mark_done("a")
    assert state.keys() == [jobledger.TaskSetKey(account, kind, DATE)]
    assert_all_inside(top, root)
    assert state.taskset(account, kind, date=DATE).completed == ["a"]
