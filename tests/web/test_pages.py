"""Each page shows its data, in Chromium, over a folder and over PostgreSQL; the main
pages are saved as screenshots (outside the repository)."""

from __future__ import annotations

from pathlib import Path

from tests.web._data import prepare
from tests.web.conftest import Board


def _rows(page, section: str) -> list[str]:
    return page.locator(f"{section} tbody tr").all_inner_texts()


def test_overview_shows_counts_failures_workers_and_tasksets(
    board: Board, page, backend: str, screenshots: Path
) -> None:
    made = prepare(board.queue, board.state)
    page.goto(board.url + "/")
    cards = {
        status: page.locator(f'.card[data-status="{status}"] .n').inner_text()
        for status in ("Queued", "Running", "Completed", "Failed", "Cancelled")
    }
    assert cards == {
        "Queued": "4",
        "Running": "1",
        "Completed": "1",
        "Failed": "1",
        "Cancelled": "1",
    }
    assert page.locator("#workers-alive .n").inner_text() == str(len(board.queue.live_workers()))
    failures = _rows(page, "#recent-failures")
    assert len(failures) == 1 and made["failed"] in failures[0]
    assert "image too small" in failures[0]
    today = page.locator("#tasksets-today").inner_text()
    assert "alice@example.com" in today and "2/4" in today and "50%" in today
    assert "bob@example.com" in today and "1/2" in today
    assert page.locator("#by-queue tbody tr").count() >= 1
    page.screenshot(path=str(screenshots / f"overview-{backend}.png"), full_page=True)


def test_queue_page_lists_running_queued_failed_and_workers(
    board: Board, page, backend: str, screenshots: Path
) -> None:
    made = prepare(board.queue, board.state)
    board.queue.set_limit("images", 2)
    board.queue.set_rate_limit("Email", 5, 60, key_field="to")
    page.goto(board.url + "/queue")
    limits = page.locator("#limits")
    assert "2" in limits.locator('tr[data-queue="images"]').inner_text()
    email = limits.locator('tr[data-type="Email"]').inner_text()
    assert "5 starts per" in email and "to" in email
    running = _rows(page, "#running")
    assert len(running) == 1
    assert made["running"] in running[0] and board.queue.worker_id in running[0]
    queued = page.locator("#queued tbody tr[data-job-id]")
    ids = [queued.nth(i).get_attribute("data-job-id") for i in range(queued.count())]
    assert ids == [j.job_id for j in board.fresh_queue().list("Queued")]
    assert set(ids) == {*made["queued"], made["delayed"]}
    delayed = page.locator(f'#queued tr[data-job-id="{made["delayed"]}"]').inner_text()
    assert board.queue.get(made["delayed"]).run_after[:10] in delayed  # its run after
    failed = page.locator("#failed").inner_text()
    assert made["failed"] in failed and "image too small" in failed
    assert board.queue.worker_id in page.locator("#workers").inner_text()
    page.screenshot(path=str(screenshots / f"queue-{backend}.png"), full_page=True)


def test_history_filters_and_pages(board: Board, page) -> None:
    prepare(board.queue, board.state)
    for i in range(55):
        board.queue.enqueue({"type": "Tiny", "i": i}, job_id=f"tiny-{i:02d}")
    for _ in range(55):
        job = board.queue.claim(types=["Tiny"])
        board.queue.complete(job.job_id, job.raw["i"])
    page.goto(board.url + "/queue/history?type=Tiny")
    first = page.locator("#history tbody tr[data-job-id]")
    assert first.count() == 50
    page.click("#next-page")
    rest = page.locator("#history tbody tr[data-job-id]")
    assert rest.count() == 5
    shown = [rest.nth(i).get_attribute("data-job-id") for i in range(5)]
    expected = [j.job_id for j in board.queue.history(type="Tiny", limit=100)][50:]
    assert shown == expected
    page.goto(board.url + "/queue/history")
    page.select_option("select[name=status]", "Failed")
    page.click("form.filters button[type=submit] >> text=Filter")
    page.wait_for_url("**status=Failed**")
    rows = page.locator("#history tbody tr[data-job-id]")
    assert rows.count() == 1
    assert "image too small" in rows.first.inner_text()
    page.goto(board.url + "/queue/history?queue=images&status=Completed")
    assert page.locator("#history tbody tr[data-job-id]").count() == 1


def test_screenshots_of_history_and_a_job(board: Board, page, backend: str, screenshots: Path):
    made = prepare(board.queue, board.state)
    page.goto(board.url + "/queue/history")
    assert page.locator("#history tbody tr[data-job-id]").count() == 3
    page.screenshot(path=str(screenshots / f"history-{backend}.png"), full_page=True)
    page.goto(board.url + f"/jobs/{made['failed']}")
    page.screenshot(path=str(screenshots / f"job-{backend}.png"), full_page=True)
    assert (screenshots / f"job-{backend}.png").stat().st_size > 0


def test_job_page_shows_payload_result_error_traceback_timeline(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    page.goto(board.url + f"/jobs/{made['failed']}")
    assert page.locator("#job-status").inner_text().startswith("Failed")
    assert '"size": 4' in page.locator("#payload").inner_text()
    assert "image too small" in page.locator("#error").inner_text()
    timeline = page.locator("#timeline").inner_text()
    assert "created" in timeline and "started" in timeline and "finished (Failed)" in timeline
    page.goto(board.url + f"/jobs/{made['done']}")
    assert "/tmp/out.png" in page.locator("#result").inner_text()
    page.goto(board.url + "/jobs/no-such-job")
    assert "no job" in page.locator("main").inner_text()


def test_traceback_of_a_handler_is_shown(board: Board, page) -> None:
    job_id = board.queue.enqueue({"type": "Boom"}, max_attempts=1)

    def boom(job) -> None:
        raise RuntimeError("deep inside the handler")

    import jobledger

    jobledger.Worker(board.queue, {"Boom": boom}).run(until_empty=True)
    page.goto(board.url + f"/jobs/{job_id}")
    assert "RuntimeError: deep inside the handler" in page.locator("#traceback").inner_text()
    assert "Traceback (most recent call last)" in page.locator("#traceback").inner_text()


def test_pages_work_without_javascript(board: Board, browser) -> None:
    made = prepare(board.queue, board.state)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(board.url + "/queue")
        assert made["failed"] in page.locator("#failed").inner_text()
        page.goto(board.url + "/")
        assert page.locator("svg#finished-chart rect.mark").count() >= 1
    finally:
        context.close()


def test_schedules_show_their_next_run(make_board, backend: str, clock, page) -> None:
    board = make_board(backend, clock=clock)  # now: 2025-01-20 10:30 UTC
    board.queue.schedule("nightly<b>", "0 3 * * *", job={"type": "Backup"}, timezone="UTC")
    page.goto(board.url + "/queue")
    row = page.locator("#schedules tbody tr").first.inner_text()
    assert "nightly<b>" in row and "0 3 * * *" in row and "Backup" in row
    assert "2025-01-21 03:00:00" in row
