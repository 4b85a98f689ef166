"""Progressive parts: the finishes-per-minute chart's marks, live updates of the queue
page (a job another process enqueues appears without a reload), and /metrics."""

from __future__ import annotations

import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.web._data import prepare
from tests.web.conftest import Board


def _finish(queue, n: int, *, fail: bool = False) -> None:
    for _ in range(n):
        job_id = queue.enqueue({"type": "Chart"}, max_attempts=1)
        job = queue.claim(types=["Chart"])
        assert job is not None and job.job_id == job_id
        if fail:
            queue.fail(job_id, "no")
        else:
            queue.complete(job_id, None)


def test_chart_has_one_mark_per_minute_and_status(make_board, backend: str, clock, page) -> None:
    board = make_board(backend, clock=clock)
    queue = board.queue
    _finish(queue, 1)  # 10:30: left out, ninety minutes before "now"
    clock.advance(minutes=40)
    _finish(queue, 2)  # 11:10: one mark (Completed)
    clock.advance(minutes=30)
    _finish(queue, 1)  # 11:40: two marks (Completed, Failed)
    _finish(queue, 1, fail=True)
    clock.advance(minutes=20)  # now 12:00
    page.goto(board.url + "/")
    marks = page.locator("svg#finished-chart rect.mark")
    assert marks.count() == 3
    assert page.locator("svg#finished-chart rect.mark.failed").count() == 1
    titles = sorted(marks.nth(i).locator("title").text_content() for i in range(3))
    assert titles == ["11:10 UTC: 2 Completed", "11:40 UTC: 1 Completed", "11:40 UTC: 1 Failed"]
    # A new finish in a new minute reaches the open page without a reload.
    page.evaluate("window.__same_page = true")
    _finish(queue, 1)
    page.wait_for_function(
        "document.querySelectorAll('svg#finished-chart rect.mark').length === 4", timeout=5000
    )
    assert page.evaluate("window.__same_page") is True


def test_a_job_enqueued_by_another_process_appears_without_reload(board: Board, page) -> None:
    prepare(board.queue, board.state)
    page.goto(board.url + "/queue")
    page.evaluate("window.__same_page = true")
    code = (
        "import sys, jobledger; jobledger.JobQueue(sys.argv[1])"
        ".enqueue({'type': 'FromAfar'}, job_id='from-another-process')"
    )
    subprocess.run([sys.executable, "-c", code, board.location], check=True, timeout=60)
    page.wait_for_selector('#queued tr[data-job-id="from-another-process"]', timeout=2000)
    assert page.evaluate("window.__same_page") is True
    assert "FromAfar" in page.locator('#queued tr[data-job-id="from-another-process"]').inner_text()


def _metrics(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(url + "/metrics").text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_metrics_and_healthz(board: Board) -> None:
    prepare(board.queue, board.state)
    answer = httpx.get(board.url + "/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    m = _metrics(board.url)
    jobs = {(labels["status"], labels["queue"]): v for labels, v in m["jobledger_jobs"]}
    by_queue = board.fresh_queue().counts_by_queue()
    assert {s: n for s, n in by_queue["images"].items() if n} == {"Completed": 1, "Failed": 1}
    for name, counts in by_queue.items():
        for status, n in counts.items():
            assert jobs[(status, name)] == n
    finished = {labels["status"]: v for labels, v in m["jobledger_jobs_finished_total"]}
    assert finished == {"Completed": 1.0, "Failed": 1.0, "Cancelled": 1.0}
    assert m["jobledger_job_duration_seconds_count"] == [({}, 2.0)]  # done and failed ran
    inf = [v for labels, v in m["jobledger_job_duration_seconds_bucket"] if labels["le"] == "+Inf"]
    assert inf == [2.0]
    assert m["jobledger_workers_alive"][0][1] == len(board.queue.live_workers())
    tasks = {
        (labels["account"], labels["type"], labels["state"]): v
        for labels, v in m["jobledger_taskset_tasks"]
    }
    assert tasks[("alice@example.com", "daily", "done")] == 2
    assert tasks[("alice@example.com", "daily", "remaining")] == 2
    ratio = {
        (labels["account"], labels["type"]): v
        for labels, v in m["jobledger_taskset_completion_ratio"]
    }
    assert ratio[("bob@example.com", "weekly")] == 0.5
    assert httpx.get(board.url + "/healthz").text == "ok\n"
