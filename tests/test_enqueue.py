"""What enqueue builds (``jobledger._enqueue``): a batch whose ids are all generated comes
as records built on first use, each once and in order; any other batch is built and
checked at once."""

from __future__ import annotations

import datetime as dt

import pytest

from jobledger import ConfigError, InvalidPayload
from jobledger._enqueue import LazyRecords, new_records

NOW = dt.datetime(2025, 1, 20, 10, 30, tzinfo=dt.timezone.utc)


def _batch(jobs, job_ids=None, fresh=None, **options):
    options = {"priority": 0, "run_after": None, "max_attempts": 3, **options}
    records, drawn = new_records(jobs, job_ids, now=NOW, **options)
    if fresh is not None:
        fresh.update(drawn)
    return records


def test_lazy_records_are_built_on_first_use_each_once_in_order():
    built: list[int] = []

    def build(i: int) -> str:
        built.append(i)
        if i == 2 and built.count(2) == 1:
            raise ValueError("the first try at 2 fails")
        return f"r{i}"

    records = LazyRecords(4, build)  # type: ignore[arg-type]
    assert len(records) == 4 and built == []
    assert records[1] == "r1" and built == [0, 1]
    with pytest.raises(ValueError):
        list(records)
    assert list(records) == ["r0", "r1", "r2", "r3"]  # built on from where it failed
    assert records[-1] == "r3" and records[1:3] == ["r1", "r2"]
    assert built == [0, 1, 2, 2, 3]
    with pytest.raises(IndexError):
        records[4]


def test_a_batch_of_generated_ids_is_built_on_first_use_its_ids_drawn_now():
    fresh: set[str] = set()
    records = _batch([{"type": "T", "n": i} for i in range(3)], fresh=fresh)
    assert isinstance(records, LazyRecords)
    assert fresh == {r.job_id for r in records} and len(fresh) == 3
    assert [r.payload for r in records] == [{"n": 0}, {"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    "jobs, job_ids",
    [
        ([{"type": "T"}, {"type": "T"}], ["a", None]),  # an id given
        ([{"type": "T"}, {"type": "T", "job_id": "own"}], None),  # an id in a payload
    ],
)
def test_a_batch_naming_an_id_is_built_and_checked_at_once(jobs, job_ids):
    fresh: set[str] = set()
    records = _batch(jobs, job_ids, fresh)
    assert isinstance(records, list) and len(fresh) == 1
    with pytest.raises(InvalidPayload):
        _batch([{"type": "T", "x": float("nan")}], ["a"])


def test_the_options_are_checked_at_once_even_for_a_lazy_batch():
    with pytest.raises(ConfigError, match="max_attempts"):
        _batch([{"type": "T"}], max_attempts=0)
    with pytest.raises(ConfigError, match="priority"):
        _batch([{"type": "T"}], priority="high")
    lazy = _batch([{"type": "T", "x": float("nan")}])  # its payload: checked when built
    with pytest.raises(InvalidPayload):
        list(lazy)
