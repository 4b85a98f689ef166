"""The task-set pages and actions in a real browser, on a folder and on PostgreSQL.

What a page shows is checked against what was stored; what an action changes is checked
through the Python API (a JobState opened anew, as another process would).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from typing import Any

import pytest

import jobledger
from tests.backends.postgres._pg import until
from tests.conftest import FakeClock
from tests.web.conftest import Board

EVIL_ACCOUNT = "<script>window.pwned = 1</script>"
EVIL_TASK = '<img src=x onerror="window.pwned = 2">'
EVIL_ERROR = "ValueError: <script>window.pwned = 3</script>"


def days_back(state: jobledger.JobState, n: int) -> str:
    return (state.today() - dt.timedelta(days=n)).isoformat()


def fresh(board: Board) -> jobledger.JobState:
    """The task sets opened anew, as another process would."""
    return jobledger.JobState(board.state_location, durability="flush")


def fill(board: Board, accounts: int = 3, days: int = 3) -> None:
    """Sets of ``accounts`` accounts over the last ``days`` days: x done (measured),
    y failed, z remaining."""
    state = board.state
    for a in range(accounts):
        for d in range(days):
            ts = state.taskset(f"acct-{a}", "daily", ["x", "y", "z"], date=days_back(state, d))
            ts.mark_done("x", duration=1.0 + a + d)
            ts.mark_failed("y", f"RuntimeError: broke on day {d}")


def accept_dialogs(page: Any) -> list[str]:
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return asked


def test_heat_map_has_a_cell_per_account_and_day(board: Board, page: Any) -> None:
    fill(board, accounts=3, days=3)
    board.state.taskset("acct-0", "weekly", ["w"], date=days_back(board.state, 0)).mark_done("w")
    page.goto(board.url + "/tasksets?days=5")
    assert page.locator("svg.heatmap rect.cell").count() == 3 * 5
    assert page.locator("svg.heatmap rect.level-none").count() == 3 * 2
    assert page.locator("svg.heatmap rect.level-failed").count() == 3 * 3
    assert page.locator("svg.heatmap text.account").all_text_contents() == [
        "acct-0",
        "acct-1",
        "acct-2",
    ]
    assert page.locator(".card .n").first.inner_text() == "3"  # accounts
    # A type chosen: only its sets are counted.
    page.select_option("select[name=type]", "weekly")
    page.click("form.filters button")
    page.wait_for_url("**type=weekly**")
    assert page.locator("svg.heatmap rect.cell").count() == 1 * 5
    assert page.locator("svg.heatmap rect.level-done").count() == 1
    # A cell leads to the account's sets of that day, and on to the set's page.
    page.goto(board.url + "/tasksets?days=5")
    today = days_back(board.state, 0)
    page.locator(f'svg.heatmap a[href*="account=acct-0"][href*="{today}"]').click()
    page.wait_for_url("**/tasksets/day?**")
    assert "acct-0" in page.locator("h1").inner_text()
    assert page.locator("td a").all_inner_texts() == ["daily", "weekly"]
    page.click("td a >> text=daily")
    page.wait_for_url("**/tasksets/set?**")
    assert page.locator("#count-completed").inner_text() == "1"


def test_the_heat_map_reads_only_its_window(board: Board, page: Any) -> None:
    state = board.state
    state.taskset("old", "daily", ["x"], date=days_back(state, 40)).mark_done("x")
    state.taskset("new", "daily", ["x"], date=days_back(state, 1)).mark_done("x")
    page.goto(board.url + "/tasksets?days=7")
    assert page.locator("svg.heatmap text.account").all_text_contents() == ["new"]
    page.goto(board.url + f"/tasksets?days=3&end={days_back(state, 39)}")
    assert page.locator("svg.heatmap text.account").all_text_contents() == ["old"]
    assert page.locator("svg.heatmap rect.cell").count() == 3
    page.goto(board.url + "/tasksets?days=1000")
    assert "days must be a whole number" in page.content()


def test_a_sets_page_shows_its_data(board: Board, page: Any) -> None:
    state = board.state
    date = days_back(state, 0)
    ts = state.taskset("alice", "daily", ["a", "b", "c", "d"], date=date)
    ts.mark_done("a", duration=2.5)
    ts.mark_failed("b", "TimeoutError: the site did not answer")
    ts.mark_failed("b", "TimeoutError: again")
    ts.progress("c", 3, 10)
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")
    assert page.locator("#count-completed").inner_text() == "1"
    assert page.locator("#count-remaining").inner_text() == "3"
    assert page.locator("#count-failed").inner_text() == "1"
    assert page.locator("#completed li").all_inner_texts() == ["a"]
    assert page.locator("#remaining li").all_inner_texts() == ["b", "c", "d"]
    failed = page.locator("#failed tbody tr")
    assert failed.count() == 1
    assert failed.locator("td").all_inner_texts()[:3] == ["b", "2", "TimeoutError: again"]
    assert page.locator("#progress tbody td").all_inner_texts()[:3] == ["c", "3", "10"]
    assert page.locator("#durations tbody td").all_inner_texts() == ["a", "2.50s"]
    assert page.locator("#holder").inner_text() == "no run holds its lease"
    raw = json.loads(page.locator("#raw").inner_text())
    assert raw == fresh(board).taskset("alice", "daily", date=date).record.to_json()
    with state.taskset("alice", "daily", date=date):
        page.reload()
        assert "pid" in page.locator("#holder").inner_text()
    page.goto(board.url + f"/tasksets/set?account=nobody&type=daily&date={date}")
    assert "no such task set" in page.content()


def test_completion_and_duration_charts_have_a_mark_per_point(board: Board, page: Any) -> None:
    fill(board, accounts=2, days=3)
    board.state.taskset("acct-0", "weekly", ["w"], date=days_back(board.state, 1)).mark_done("w")
    page.goto(board.url + "/tasksets/rates?days=7")
    sections = page.locator("section.type-rates")
    assert sections.locator("h2").all_inner_texts() == ["daily", "weekly"]
    assert sections.nth(0).locator("svg .mark").count() == 3  # a bar per day with sets
    assert sections.nth(1).locator("svg .mark").count() == 1
    title = sections.nth(0).locator("svg .mark title").first.text_content()
    assert "2/6 tasks" in title and "0/2 sets complete" in title
    page.goto(board.url + "/tasksets/durations?days=7")
    charts = page.locator("section.task-durations")
    assert charts.count() == 1  # daily/x: weekly/w was marked done without a duration
    daily_x = charts.filter(has_text="daily / x")
    assert daily_x.locator("svg .mark").count() == 2 * 3  # p50 and p95 on 3 days
    assert daily_x.locator("g[data-series=p50] .mark").count() == 3
    page.goto(board.url + "/tasksets/durations?days=7&type=weekly")
    assert page.locator("section.task-durations").count() == 0


def test_failing_tasks_are_ranked_with_their_last_error(board: Board, page: Any) -> None:
    fill(board, accounts=2, days=2)
    state = board.state
    state.taskset("acct-0", "daily", date=days_back(state, 0)).mark_failed("z", "once")
    page.goto(board.url + "/tasksets/failing?days=7")
    rows = page.locator("#failing tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").all_inner_texts()[:5] == ["daily", "y", "4", "4", "4"]
    assert rows.nth(1).locator("td").all_inner_texts()[:5] == ["daily", "z", "1", "1", "1"]
    assert rows.nth(0).locator("td.error").inner_text().startswith("RuntimeError: broke on day")


_HOLD = """
import sys, jobledger
state = jobledger.JobState(sys.argv[1], durability="flush")
with state.taskset("dies", "daily", ["x", "y"], date=sys.argv[2]) as ts:
    ts.mark_done("x")
    print("held", flush=True)
    sys.stdin.read()
"""


def test_runs_page_shows_live_leases_and_stuck_runs(board: Board, page: Any) -> None:
    state = board.state
    today = days_back(state, 0)
    for d in range(1, 4):  # history: task y usually takes a second
        state.taskset("hist", "daily", ["y"], date=days_back(state, d)).mark_done("y", duration=1.0)
    # A run that started two hours ago and is still on task y: stuck.
    past = FakeClock((dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).isoformat())
    slow = jobledger.JobState(board.state_location, durability="flush", clock=past)
    slow_set = slow.taskset("slow", "daily", ["x", "y"], date=today)
    # A run that is fine: it just started.
    ok_set = state.taskset("fine", "daily", ["y"], date=today)
    # A run whose process was killed with a task left.
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, board.state_location, today],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    until(lambda: any(not lease.alive for lease in state.leases()), 20, "the killed run seen dead")
    with slow_set, ok_set:
        slow_set.mark_done("x")
        page.goto(board.url + "/tasksets/runs")
        live = page.locator("#live tbody tr")
        assert live.count() == 2
        assert [t.split(" / ")[0] for t in live.locator("td:first-child").all_inner_texts()] == [
            "fine",
            "slow",
        ]
        stuck = page.locator("#stuck tbody tr")
        assert stuck.count() == 2
        dead = page.locator("#stuck tr.dead")
        assert dead.locator("td").first.inner_text().startswith("dies")
        assert f"pid {child.pid}" in dead.inner_text()
        assert "died with 1 of 2 tasks left" in dead.inner_text()
        late = page.locator("#stuck tr.slow")
        assert late.locator("td").first.inner_text().startswith("slow")
        assert "task y has run 2h" in late.inner_text()
    page.reload()
    assert page.locator("#live").count() == 0
    assert page.locator("#stuck tbody tr").count() == 1  # the dead run's lease stays


def test_retry_action_forgets_the_failures(board: Board, page: Any) -> None:
    state = board.state
    date = days_back(state, 0)
    ts = state.taskset("alice", "daily", ["a", "b", "c"], date=date)
    ts.mark_failed("a", "boom")
    ts.mark_failed("c", "bang")
    asked = accept_dialogs(page)
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")
    page.click("#retry")
    page.wait_for_url("**done=retry**")
    assert asked and "Retry the 2 failed task(s)" in asked[0]
    assert "failures of 2 task(s) were forgotten" in page.locator(".flash").inner_text()
    again = fresh(board).taskset("alice", "daily", date=date)
    assert again.failed == {}
    assert list(again.pending(retry_failed=False)) == ["a", "b", "c"]
    assert page.locator("#retry").count() == 0  # nothing left to retry


def test_reset_action_deletes_the_set_and_a_dismissed_confirm_changes_nothing(
    board: Board, page: Any
) -> None:
    state = board.state
    date = days_back(state, 0)
    state.taskset("alice", "daily", ["a", "b"], date=date).mark_done("a")
    state.taskset("alice", "weekly", ["w"], date=date).mark_done("w")
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#reset")
    assert jobledger.TaskSetKey("alice", "daily", date) in fresh(board).keys()
    accept_dialogs(page)
    page.click("#reset")
    page.wait_for_url("**/tasksets/day?**")
    assert "was reset" in page.locator(".flash").inner_text()
    assert fresh(board).keys() == [jobledger.TaskSetKey("alice", "weekly", date)]


def test_an_action_on_a_running_set_is_refused_and_changes_nothing(board: Board, page: Any) -> None:
    state = board.state
    date = days_back(state, 0)
    ts = state.taskset("alice", "daily", ["a"], date=date)
    ts.mark_failed("a", "boom")
    accept_dialogs(page)
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")
    with fresh(board).taskset("alice", "daily", date=date):
        page.click("#reset")
        page.wait_for_selector("p.error")
        assert "already running" in page.locator("p.error").inner_text()
        page.click("#retry")
        page.wait_for_selector("p.error")
    assert set(fresh(board).taskset("alice", "daily", date=date).failed) == {"a"}


def test_a_script_in_names_and_errors_stays_inert_text(board: Board, page: Any) -> None:
    state = board.state
    date = days_back(state, 0)
    ts = state.taskset(EVIL_ACCOUNT, EVIL_TASK, [EVIL_TASK, "ok"], date=date)
    ts.mark_failed(EVIL_TASK, EVIL_ERROR)
    ts.mark_done("ok", duration=1.0)
    query = {"account": EVIL_ACCOUNT, "type": EVIL_TASK, "date": date}
    from urllib.parse import urlencode

    for path in (
        "/tasksets",
        "/tasksets/set?" + urlencode(query),
        "/tasksets/day?" + urlencode({"account": EVIL_ACCOUNT, "date": date}),
        "/tasksets/rates",
        "/tasksets/failing",
        "/tasksets/durations",
    ):
        page.goto(board.url + path)
        assert page.evaluate("window.pwned") is None, path
        assert page.locator("img[src=x]").count() == 0, path
        assert page.locator("script:not([src])").count() == 0, path
    page.goto(board.url + "/tasksets/set?" + urlencode(query))
    assert page.locator("h1 .account").inner_text() == EVIL_ACCOUNT
    assert page.locator("#failed td.error").inner_text() == EVIL_ERROR
    assert page.locator("#failed td.task").inner_text() == EVIL_TASK
    page.goto(board.url + "/tasksets/failing")
    assert page.locator("#failing td.task").inner_text() == EVIL_TASK


def test_a_post_without_a_valid_csrf_token_is_refused(board: Board, page: Any) -> None:
    state = board.state
    date = days_back(state, 0)
    state.taskset("alice", "daily", ["a"], date=date).mark_failed("a", "boom")
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")  # the cookie
    form = {"account": "alice", "type": "daily", "date": date}
    for path in ("/tasksets/set/retry", "/tasksets/set/reset"):
        answer = page.request.post(board.url + path, form=form, max_redirects=0)
        assert answer.status == 403, path
        wrong = page.request.post(
            board.url + path, form={**form, "csrf_token": "0" * 64}, max_redirects=0
        )
        assert wrong.status == 403, path
    assert page.request.get(board.url + "/tasksets/set/reset").status == 405
    after = fresh(board).taskset("alice", "daily", date=date)
    assert set(after.failed) == {"a"}


def test_read_only_shows_no_action_and_mounts_none(
    make_board: Any, backend: str, page: Any
) -> None:
    board = make_board(backend, read_only=True)
    state = board.state
    date = days_back(state, 0)
    state.taskset("alice", "daily", ["a"], date=date).mark_failed("a", "boom")
    page.goto(board.url + f"/tasksets/set?account=alice&type=daily&date={date}")
    assert page.locator("#failed tbody tr").count() == 1
    assert page.locator("form[method=post]").count() == 0
    assert page.locator("#retry, #reset").count() == 0
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    form = {"account": "alice", "type": "daily", "date": date, "csrf_token": token}
    for path in ("/tasksets/set/retry", "/tasksets/set/reset"):
        assert page.request.post(board.url + path, form=form).status in (404, 405)
    assert set(fresh(board).taskset("alice", "daily", date=date).failed) == {"a"}


@pytest.mark.parametrize("path", ["/tasksets", "/tasksets/runs"])
def test_pages_without_task_sets_say_so(board: Board, page: Any, path: str) -> None:
    board.state.taskset("a", "t", ["x"], date=days_back(board.state, 100)).mark_done("x")
    page.goto(board.url + path)
    assert page.locator("p.empty").count() >= 1
