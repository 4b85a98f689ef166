"""Each action, clicked and confirmed in Chromium, changes the state (checked through the
Python API); a read-only dashboard has none."""

from __future__ import annotations

import jobledger
from jobledger import JobStatus
from tests.web._data import prepare
from tests.web.conftest import Board


def _accept_dialogs(page) -> list[str]:
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def _status(board: Board, job_id: str) -> JobStatus:
    job = board.fresh_queue().get(job_id)
    assert job is not None
    return job.status


def test_retry_a_failed_job(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    asked = _accept_dialogs(page)
    page.goto(board.url + f"/jobs/{made['failed']}")
    page.click("button:text('Retry')")
    page.wait_for_selector(".flash")
    assert asked and made["failed"] in asked[0]
    assert _status(board, made["failed"]) is JobStatus.QUEUED
    assert page.locator("#job-status").inner_text().startswith("Queued")


def test_a_dismissed_confirmation_changes_nothing(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.goto(board.url + f"/jobs/{made['failed']}")
    page.click("button:text('Retry')")
    page.goto(board.url + f"/jobs/{made['failed']}")  # nothing was sent
    assert _status(board, made["failed"]) is JobStatus.FAILED


def test_cancel_a_queued_job_and_ask_a_running_one_to_stop(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    _accept_dialogs(page)
    target = made["queued"][0]
    page.goto(board.url + "/queue")
    page.click(f'#queued tr[data-job-id="{target}"] button:text("Cancel")')
    page.wait_for_selector(".flash")
    assert _status(board, target) is JobStatus.CANCELLED
    page.goto(board.url + f"/jobs/{made['running']}")
    page.click("button:text('Cancel')")
    page.wait_for_selector(".flash")
    running = board.fresh_queue().get(made["running"])
    assert running.status is JobStatus.RUNNING and running.cancel_requested_at is not None


def test_requeue_a_completed_job_as_a_new_one(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    _accept_dialogs(page)
    page.goto(board.url + f"/jobs/{made['done']}")
    page.click("button:text('Requeue')")
    page.wait_for_selector(".flash")
    new_id = page.url.split("/jobs/")[1].split("?")[0]
    assert new_id != made["done"]
    copy = board.fresh_queue().get(new_id)
    assert copy.status is JobStatus.QUEUED
    assert copy.raw == board.fresh_queue().get(made["done"]).raw
    assert _status(board, made["done"]) is JobStatus.COMPLETED


def test_prune_finished_jobs_older_than(make_board, backend: str, clock, page) -> None:
    board = make_board(backend, clock=clock)
    made = prepare(board.queue, board.state)
    clock.advance(days=3)
    fresh = board.queue.enqueue({"type": "Late"}, max_attempts=1)
    board.queue.claim(types=["Late"])
    board.queue.complete(fresh, None)
    _accept_dialogs(page)
    page.goto(board.url + "/queue/history")
    page.fill("input[name=older_than]", "2d")
    page.click("button:text('Prune')")
    page.wait_for_selector(".flash")
    assert "Pruned 3" in page.locator(".flash").inner_text()
    queue = board.fresh_queue()
    assert queue.get(made["done"]) is None and queue.get(made["failed"]) is None
    assert queue.get(fresh).status is JobStatus.COMPLETED
    assert page.locator("#history tbody tr[data-job-id]").count() == 1


def test_bulk_retry_on_a_filter(board: Board, page) -> None:
    prepare(board.queue, board.state)
    failed = []
    for i in range(4):
        kind = "Flaky" if i < 3 else "Other"
        failed.append(board.queue.enqueue({"type": kind, "i": i}, max_attempts=1))
    for job_id in failed:
        board.queue.claim(types=["Flaky", "Other"])
        board.queue.fail(job_id, "flaked")
    _accept_dialogs(page)
    page.goto(board.url + "/queue/history?status=Failed&type=Flaky")
    page.click("button:text('Retry every Failed or Cancelled job matching this filter')")
    page.wait_for_selector(".flash")
    assert "Retried 3 jobs" in page.locator(".flash").inner_text()
    queue = board.fresh_queue()
    assert [queue.get(i).status for i in failed] == [JobStatus.QUEUED] * 3 + [JobStatus.FAILED]


def test_bulk_cancel_of_queued_jobs_on_a_filter(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    mail = [board.queue.enqueue({"type": "Spam", "i": i}, queue="mail") for i in range(3)]
    other = board.queue.enqueue({"type": "Spam"})  # the same type in another queue
    _accept_dialogs(page)
    page.goto(board.url + "/queue")
    page.fill("#bulk-cancel input[name=type]", "Spam")
    page.fill("#bulk-cancel input[name=queue]", "mail")
    page.click("#bulk-cancel button")
    page.wait_for_selector(".flash")
    assert "Cancelled 3 queued jobs of type Spam in queue mail" in page.inner_text(".flash")
    queue = board.fresh_queue()
    assert [queue.get(i).status for i in mail] == [JobStatus.CANCELLED] * 3
    assert queue.get(other).status is JobStatus.QUEUED
    assert {queue.get(i).status for i in made["queued"]} == {JobStatus.QUEUED}


def test_read_only_has_no_actions(make_board, backend: str, page) -> None:
    board = make_board(backend, read_only=True)
    made = prepare(board.queue, board.state)
    for path in ("/queue", f"/jobs/{made['failed']}", "/queue/history"):
        page.goto(board.url + path)
        assert page.locator("form[method=post]").count() == 0
        assert page.locator("text=read-only").count() >= 1
    answer = page.request.post(
        board.url + f"/actions/jobs/{made['failed']}/retry",
        form={"csrf_token": page.locator("meta[name=csrf-token]").get_attribute("content")},
    )
    assert answer.status in (404, 405)
    assert _status(board, made["failed"]) is JobStatus.FAILED
    assert jobledger.JobQueue(board.location).get(made["failed"]).status is JobStatus.FAILED
