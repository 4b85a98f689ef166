"""`jobledger jobs ...` on a prepared queue: output content and exit codes.

The ``pq`` tests run on each backend of ``BACKENDS`` (a folder, or a PostgreSQL schema's
URL given to ``--dir``); the tests under "files only" look at the queue folder on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import jobledger
from jobledger import JobQueue, JobStatus
from jobledger._attempt_services import AttemptServices
from jobledger.cli import _maint, cli
from tests.conftest import BACKENDS, FakeClock

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class PreparedQueue:
    """A queue (a folder, or a PostgreSQL URL) with jobs in every status.

    ``queue`` stays open: it is the live worker running job ``running``.
    """

    dir: Path | str
    queue: JobQueue

    @property
    def on_files(self) -> bool:
        return isinstance(self.dir, Path)

    def run(self, *args: str, input: str | None = None) -> Result:
        return jobs_cli(*args, "--dir", str(self.dir), input=input)

    def doc(self, job_id: str) -> dict[str, object]:
        """The stored document: the job file read from disk, or the row's document."""
        if isinstance(self.dir, Path):
            data: dict[str, object] = json.loads((self.dir / "jobs" / f"{job_id}.json").read_text())
            return data
        record = self.queue.backend.get(job_id)
        assert record is not None, job_id
        return record.to_json()


def jobs_cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["jobs", *args], input=input)


def _age_file(queue_dir: Path, job_id: str, when: dt.datetime) -> None:
    """A finished job's file was last written when it finished (as in real life)."""
    stamp = when.timestamp()
    os.utime(queue_dir / "jobs" / f"{job_id}.json", (stamp, stamp))


def build_queue(root: Path) -> PreparedQueue:
    """The queue of :func:`build_queue_at` in the folder ``root / "queue"``."""
    return build_queue_at(root / "queue")


def build_queue_at(qdir: Path | str) -> PreparedQueue:
    """10 days ago: old-done (Completed), old-failed (Failed); 1 day ago: recent-done
    (Completed), cancelled (Cancelled); now: running (Running), q-high and q-low (Queued);
    in the folder or PostgreSQL URL ``qdir``."""
    clock = FakeClock((NOW - dt.timedelta(days=10)).isoformat())
    q = JobQueue(qdir, durability="flush", clock=clock)

    q.enqueue({"type": "echo", "text": "old"}, job_id="old-done")
    q.enqueue({"type": "flaky"}, job_id="old-failed", max_attempts=1)
    assert q.claim(types=["echo"]) is not None
    q.complete("old-done", {"echoed": "old"})
    assert q.claim(types=["flaky"]) is not None
    q.fail("old-failed", RuntimeError("model download timed out"))
    old = clock.now()

    clock.set((NOW - dt.timedelta(days=1)).isoformat())
    q.enqueue({"type": "echo", "text": "recent"}, job_id="recent-done")
    assert q.claim(types=["echo"]) is not None
    q.complete("recent-done", {"echoed": "recent"})
    q.enqueue({"type": "echo"}, job_id="cancelled")
    q.cancel("cancelled")
    recent = clock.now()

    clock.set(NOW.isoformat())
    q.enqueue({"type": "slow", "model": "mistralai/Mistral-7B-v0.1"}, job_id="running")
    assert q.claim(types=["slow"]) is not None
    q.enqueue({"type": "echo", "text": "low"}, job_id="q-low")
    q.enqueue({"type": "echo", "text": "high"}, job_id="q-high", priority=5)

    if isinstance(qdir, Path):
        for job_id in ("old-done", "old-failed"):
            _age_file(qdir, job_id, old)
        for job_id in ("recent-done", "cancelled"):
            _age_file(qdir, job_id, recent)
    return PreparedQueue(qdir, q)


@pytest.fixture(params=BACKENDS)
def pq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PreparedQueue]:
    """The prepared queue on each backend."""
    yield from prepared_queue(request, tmp_path)


def prepared_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PreparedQueue]:
    """The body of a fixture with ``params=BACKENDS``: the prepared queue in a folder under
    ``tmp_path`` or in a PostgreSQL schema, closed after the test."""
    if request.param == "files":
        prepared = build_queue(tmp_path)
    else:
        prepared = build_queue_at(request.getfixturevalue("pg_url"))
    yield prepared
    prepared.queue.close()


def rows(out: str, min_cells: int = 3) -> dict[str, str]:
    """Table rows (of at least ``min_cells`` cells) by their first cell."""
    return {
        line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > min_cells
    }


# -- list -----------------------------------------------------------------------------------


def test_list_shows_every_job_in_serving_order_with_counts(pq: PreparedQueue) -> None:
    result = pq.run("list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    table = rows(out)
    assert set(table) >= {
        "running",
        "q-high",
        "q-low",
        "old-done",
        "old-failed",
        "recent-done",
        "cancelled",
    }
    assert "Running" in table["running"] and "1/3" in table["running"]
    assert "Queued" in table["q-high"] and "│ 5 " in table["q-high"]
    assert "Failed" in table["old-failed"] and "1/1" in table["old-failed"]
    assert "RuntimeError: model download timed out" in table["old-failed"]
    order = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 3]
    order = [i for i in order if i != "Job id"]
    # live jobs in serving order first, then finished ones by finish time
    assert order[:3] == ["running", "q-high", "q-low"]
    assert order.index("old-done") < order.index("recent-done")
    assert "7 jobs in" in out
    assert "Counts: Queued 2, Running 1, Completed 2, Failed 1, Cancelled 1" in out


def test_list_status_filter_is_case_insensitive(pq: PreparedQueue) -> None:
    result = pq.run("list", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert set(rows(result.stdout)) - {"Job id"} == {"old-failed"}
    queued = pq.run("list", "--status", "Queued")
    assert set(rows(queued.stdout)) - {"Job id"} == {"q-high", "q-low"}
    assert "2 Queued jobs in" in queued.stdout


def test_list_unknown_status_is_a_usage_error(pq: PreparedQueue) -> None:
    result = pq.run("list", "--status", "Done")
    assert result.exit_code == 2
    assert "'Done' is not one of" in result.stderr


def test_list_json_prints_the_job_files_documents(pq: PreparedQueue) -> None:
    result = pq.run("list", "--json")
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    assert [d["job_id"] for d in docs][:3] == ["running", "q-high", "q-low"]
    by_id = {d["job_id"]: d for d in docs}
    assert len(by_id) == 7
    for job_id, doc in by_id.items():
        assert doc == pq.doc(job_id)
    assert by_id["running"]["model"] == "mistralai/Mistral-7B-v0.1"
    assert by_id["old-done"]["_jobledger"]["result"] == {"echoed": "old"}


def test_list_of_an_empty_queue(tmp_path: Path) -> None:  # files only: an empty folder
    (tmp_path / "empty").mkdir()
    result = jobs_cli("list", "--dir", str(tmp_path / "empty"))
    assert result.exit_code == 0
    assert "No jobs in" in result.stdout
    assert "Counts: Queued 0, Running 0" in result.stdout


def test_dir_comes_from_the_environment(pq: PreparedQueue) -> None:
    result = CliRunner(env={"JOBLEDGER_QUEUE_DIR": str(pq.dir)}).invoke(
        cli, ["jobs", "list", "--status", "Running"]
    )
    assert result.exit_code == 0, result.output
    assert "running" in rows(result.stdout)


# Files only: a folder that does not exist.
def test_dir_is_required_and_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBLEDGER_QUEUE_DIR", raising=False)
    missing = jobs_cli("list")
    assert missing.exit_code == 2
    assert "Missing option '--dir'" in missing.stderr
    typo = jobs_cli("show", "x", "--dir", str(tmp_path / "nope"))
    assert typo.exit_code == 2
    assert "does not exist" in typo.stderr
    assert not (tmp_path / "nope").exists()  # a mistyped path does not become a new queue


# -- show and counts --------------------------------------------------------------------------


def test_show_prints_fields_payload_and_result(pq: PreparedQueue) -> None:
    result = pq.run("show", "old-done")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Completed" in out and "1/3" in out
    assert '"text": "old"' in out
    assert "Result:" in out and '"echoed": "old"' in out
    running = pq.run("show", "running")
    assert pq.queue.worker_id in running.stdout
    assert "Result:" not in running.stdout


def test_show_json_is_the_file_document(pq: PreparedQueue) -> None:
    result = pq.run("show", "old-failed", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == pq.doc("old-failed")


def test_show_unknown_job_exits_1(pq: PreparedQueue) -> None:
    for extra in ([], ["--json"]):
        result = pq.run("show", "no-such-job", *extra)
        assert result.exit_code == 1
        assert "error: no job 'no-such-job' in the queue at" in result.stderr
        assert "jobledger jobs list" in result.stderr


def test_counts_table_and_json(pq: PreparedQueue) -> None:
    result = pq.run("counts")
    assert result.exit_code == 0, result.output
    table = rows(result.stdout, min_cells=2)
    assert "│ 2 " in table["Queued"] and "│ 1 " in table["Running"]
    assert "│ 7 " in table["Total"]
    as_json = pq.run("counts", "--json")
    assert json.loads(as_json.stdout) == {
        "Queued": 2,
        "Running": 1,
        "Completed": 2,
        "Failed": 1,
        "Cancelled": 1,
    }


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_prints_the_id_and_stores_the_job(pq: PreparedQueue) -> None:
    result = pq.run(
        "enqueue",
        "TextJob",
        "--payload",
        '{"model": "mistralai/Mistral-7B-v0.1", "dataset": "my-dataset.json"}',
        "--priority",
        "3",
        "--max-attempts",
        "5",
    )
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    doc = pq.doc(job_id)
    assert doc["type"] == "TextJob" and doc["status"] == "Queued"
    assert doc["model"] == "mistralai/Mistral-7B-v0.1"
    meta = doc["_jobledger"]
    assert isinstance(meta, dict)
    assert meta["priority"] == 3 and meta["max_attempts"] == 5 and meta["run_after"] is None
    if isinstance(pq.dir, Path):  # the folder's index, on disk
        assert job_id in json.loads((pq.dir / "queue.json").read_text())["queued"]


def test_enqueue_with_id_delay_and_payload_file(pq: PreparedQueue, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"dataset": "d.json"}', encoding="utf-8")
    result = pq.run(
        "enqueue", "TextJob", "--payload-file", str(payload), "--id", "job-7", "--delay", "3600"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "job-7\n"
    job = pq.queue.get("job-7")
    assert job is not None and job.raw == {"dataset": "d.json"}
    assert job.run_after is not None and job.run_after > job.created  # type: ignore[operator]


def test_enqueue_payload_from_stdin(pq: PreparedQueue) -> None:
    result = pq.run("enqueue", "echo", "--payload-file", "-", "--id", "s1", input='{"a": [1]}')
    assert result.exit_code == 0, result.output
    assert pq.doc("s1")["a"] == [1]


def test_enqueue_an_existing_id_stores_nothing_and_says_so(pq: PreparedQueue) -> None:
    before = pq.doc("old-done")
    result = pq.run("enqueue", "echo", "--id", "old-done", "--payload", '{"text": "new"}')
    assert result.exit_code == 0, result.output
    assert result.stdout == "old-done\n"
    assert "already exists (Completed)" in result.stderr
    assert pq.doc("old-done") == before


def test_enqueue_without_payload_makes_an_empty_one(tmp_path: Path) -> None:  # files only
    qdir = tmp_path / "new-queue"  # enqueue --create may create the folder (issue 11)
    result = jobs_cli("enqueue", "ping", "--dir", str(qdir), "--create")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    job = JobQueue(qdir).get(job_id)
    assert job is not None and job.type == "ping" and job.raw == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--payload", "{model: 1}"], "is not valid JSON"),
        (["--payload", "[1, 2]"], "is a JSON list, not an object"),
        (["--payload", "{}", "--payload-file", "x.json"], "not both"),
        (["--payload-file", "/no/such/file.json"], "cannot read /no/such/file.json"),
        (["--payload", '{"type": "Other"}'], "drop 'type' from the payload"),
        (["--payload", '{"status": "Completed"}'], "reserved by the job file format"),
        (["--max-attempts", "0"], "0 is not in the range x>=1"),
        (["--delay", "-1"], "the duration '-1' is negative"),
        (["--id", ""], "job id must be a non-empty string"),
    ],
)
def test_enqueue_bad_input_is_a_usage_error(
    pq: PreparedQueue, args: list[str], message: str
) -> None:
    before = pq.queue.counts()
    result = pq.run("enqueue", "TextJob", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert pq.queue.counts() == before


# -- retry and cancel ---------------------------------------------------------------------------


def test_retry_queues_a_failed_job_again(pq: PreparedQueue) -> None:
    result = pq.run("retry", "old-failed")
    assert result.exit_code == 0, result.output
    assert "Job old-failed (flaky) is Queued again" in result.stdout
    job = pq.queue.get("old-failed")
    assert job is not None and job.status is JobStatus.QUEUED and job.attempts == 0


def test_retry_of_a_live_job_is_refused(pq: PreparedQueue) -> None:
    before = pq.doc("q-low")
    result = pq.run("retry", "q-low")
    assert result.exit_code == 1
    assert "error: cannot retry job q-low: it is Queued" in result.stderr
    assert pq.doc("q-low") == before


def test_retry_unknown_job_exits_1(pq: PreparedQueue) -> None:
    result = pq.run("retry", "ghost")
    assert result.exit_code == 1
    assert "no job 'ghost'" in result.stderr


def test_cancel_a_queued_job(pq: PreparedQueue) -> None:
    result = pq.run("cancel", "q-low")
    assert result.exit_code == 0, result.output
    assert "Cancelled job q-low (echo)" in result.stdout
    assert pq.doc("q-low")["status"] == "Cancelled"
    assert pq.queue.counts()["Cancelled"] == 2


def test_cancel_a_running_job_asks_its_worker(pq: PreparedQueue) -> None:
    result = pq.run("cancel", "running")
    assert result.exit_code == 0, result.output
    assert f"Asked worker {pq.queue.worker_id} to stop job running (slow)" in result.stdout
    assert "it stays Running until its handler stops, then is Cancelled" in result.stdout
    assert pq.doc("running")["status"] == "Running"
    listed = pq.run("list", "--status", "Running")
    assert "Running (cancel asked)" in rows(listed.stdout)["running"]
    assert "Cancel asked" in pq.run("show", "running").stdout
    # Its worker's handler stops (JobCancelled): Cancelled, never retried.
    stopped = pq.queue.fail("running", jobledger.JobCancelled("running"))
    assert stopped.status is JobStatus.CANCELLED
    assert "Cancelled job" not in result.stdout


def test_list_shows_the_progress_column_and_show_its_report_with_its_time(
    pq: PreparedQueue,
) -> None:
    assert "Progress" not in pq.run("list").stdout  # no job has reported any
    job = pq.queue.get("running")
    assert job is not None
    services = AttemptServices(pq.queue)
    job.with_attempt(services.begin(job)).progress(3, 10, "epoch 3")
    services.end("running")  # the attempt's end writes the report
    result = pq.run("list")
    assert result.exit_code == 0, result.output
    assert "Progress" in result.stdout
    assert "3/10 30%" in rows(result.stdout)["running"]
    assert "3/10 30%" not in rows(result.stdout)["q-low"]
    shown = pq.run("show", "running").stdout
    assert f"3/10 30% (epoch 3) at {NOW.strftime('%Y-%m-%dT%H:%M:%SZ')}" in shown


def test_cancel_a_finished_job_is_refused(pq: PreparedQueue) -> None:
    result = pq.run("cancel", "old-done")
    assert result.exit_code == 1
    assert "error: cannot cancel job old-done: it is already Completed" in result.stderr


# -- prune ------------------------------------------------------------------------------------


def test_prune_dry_run_counts_and_deletes_nothing(pq: PreparedQueue) -> None:
    result = pq.run("prune", "--older-than", "7d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would prune 2 jobs finished before" in result.stdout
    assert "(Completed 1, Failed 1)" in result.stdout
    assert "Nothing was deleted" in result.stdout
    if isinstance(pq.dir, Path):
        assert (pq.dir / "jobs" / "old-done.json").exists()
    assert pq.queue.get("old-done") is not None


def test_prune_deletes_old_finished_jobs_only(pq: PreparedQueue) -> None:
    result = pq.run("prune", "--older-than", "7d")
    assert result.exit_code == 0, result.output
    assert "Pruned 2 jobs finished before" in result.stdout
    if isinstance(pq.dir, Path):
        left = {p.stem for p in (pq.dir / "jobs").glob("*.json")}
    else:
        left = {job.job_id for job in pq.queue.list()}
    assert left == {"recent-done", "cancelled", "running", "q-high", "q-low"}
    assert pq.queue.counts() == {
        "Queued": 2,
        "Running": 1,
        "Completed": 1,
        "Failed": 0,
        "Cancelled": 1,
    }
    again = pq.run("prune", "--older-than", "7d", "--dry-run")
    assert "Nothing to prune" in again.stdout


def test_prune_dry_run_agrees_with_prune(pq: PreparedQueue) -> None:
    dry = pq.run("prune", "--older-than", "12h", "--dry-run")
    real = pq.run("prune", "--older-than", "12h")
    assert "Would prune 4 jobs" in dry.stdout
    assert "Pruned 4 jobs" in real.stdout


def test_prune_interrupted_between_batches_says_what_it_pruned_and_keeps_it(
    pq: PreparedQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = JobQueue.prune

    def ctrl_c_after_one_batch(self: JobQueue, older_than: Any, **kwargs: Any) -> int:
        told = kwargs["on_batch"]

        def then_interrupted(n: int) -> None:
            told(n)
            raise KeyboardInterrupt

        self.backend.prune_batch = 1  # the CLI's own queue: one job a batch
        return real(self, older_than, **{**kwargs, "on_batch": then_interrupted})

    monkeypatch.setattr(JobQueue, "prune", ctrl_c_after_one_batch)
    result = pq.run("prune", "--older-than", "7d")
    assert result.exit_code == 130, result.output
    assert "Interrupted: pruned 1 job finished before" in result.stderr
    assert "the rest are kept. Run the command again to go on." in result.stderr
    monkeypatch.undo()
    assert len({"old-done", "old-failed"} & {j.job_id for j in pq.queue.list()}) == 1
    again = pq.run("prune", "--older-than", "7d")
    assert "Pruned 1 job finished before" in again.stdout


def test_prune_bad_age_is_a_usage_error(pq: PreparedQueue) -> None:
    result = pq.run("prune", "--older-than", "soon")
    assert result.exit_code == 2
    assert "cannot read the duration 'soon'" in result.stderr


# -- clear ------------------------------------------------------------------------------------
# Files only, but for test_clear_refuses_while_this_process_runs_a_worker: they look at the
# queue folder on disk (tests/cli/test_cli_postgres.py clears a database queue).


@pytest.fixture
def idle_queue(tmp_path: Path) -> Path:
    """A queue with two jobs and no live worker."""
    qdir = tmp_path / "idle"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "echo"}, job_id="a")
        q.enqueue({"type": "echo"}, job_id="b")
    return qdir


class WorkerChild:
    """A forked child process holding a registered worker of a queue until released."""

    def __init__(self, qdir: Path) -> None:
        ready_r, ready_w = os.pipe()
        release_r, release_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: register, tell the parent, wait to be released
            code = 1
            try:
                os.close(ready_r)
                os.close(release_w)
                queue = JobQueue(qdir, durability="flush")
                os.write(ready_w, queue.worker_id.encode() + b"\n")
                os.read(release_r, 1)
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        os.close(release_r)
        self.pid = pid
        self._release = release_w
        with os.fdopen(ready_r, "rb") as ready:
            self.worker_id = ready.readline().decode().strip()  # blocks until registered
        assert self.worker_id, "the child died before registering its worker"

    def stop(self) -> None:
        os.write(self._release, b"x")
        os.close(self._release)
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_clear_refuses_while_a_worker_is_alive_then_clears(idle_queue: Path) -> None:
    child = WorkerChild(idle_queue)
    try:
        refused = jobs_cli("clear", "--yes", "--dir", str(idle_queue))
        assert refused.exit_code == 1
        assert "refusing to clear the queue" in refused.stderr
        assert child.worker_id in refused.stderr
        assert "Stop them first" in refused.stderr
        assert (idle_queue / "jobs" / "a.json").exists()
    finally:
        child.stop()
    done = jobs_cli("clear", "--yes", "--dir", str(idle_queue))
    assert done.exit_code == 0, done.output
    assert "deleted 2 jobs and queue.json" in done.stdout
    assert list((idle_queue / "jobs").iterdir()) == []
    assert JobQueue(idle_queue).counts()["Queued"] == 0


def test_clear_refuses_while_this_process_runs_a_worker(pq: PreparedQueue) -> None:
    result = pq.run("clear", "--yes")
    assert result.exit_code == 1
    assert pq.queue.worker_id in result.stderr


def test_clear_without_a_tty_needs_yes(idle_queue: Path) -> None:
    result = jobs_cli("clear", "--dir", str(idle_queue))
    assert result.exit_code == 2
    assert "clear would delete 2 jobs" in result.stderr and "pass --yes" in result.stderr
    assert (idle_queue / "jobs" / "a.json").exists()


def test_clear_asks_on_a_tty(idle_queue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_maint, "stdin_is_tty", lambda: True)
    declined = jobs_cli("clear", "--dir", str(idle_queue), input="n\n")
    assert declined.exit_code == 1  # click's Abort
    assert (idle_queue / "jobs" / "a.json").exists()
    accepted = jobs_cli("clear", "--dir", str(idle_queue), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert not (idle_queue / "jobs" / "a.json").exists()
    empty = jobs_cli("clear", "--dir", str(idle_queue))
    assert empty.exit_code == 0
    assert "already empty" in empty.stdout


def test_help_lists_the_jobs_commands() -> None:
    result = CliRunner().invoke(cli, ["jobs", "--help"])
    assert result.exit_code == 0
    for name in ("list", "show", "counts", "enqueue", "retry", "cancel", "prune", "clear"):
        assert name in result.stdout
