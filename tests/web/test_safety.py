"""Safe by default: stored strings stay inert text, a state change needs POST and a valid
CSRF token, a non-loopback dashboard refuses requests without its token, and no page
shows a database password."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

import jobledger
from jobledger import JobStatus
from tests.web._data import prepare
from tests.web.conftest import Board, free_port

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'


def test_script_in_payload_error_and_names_stays_text(board: Board, page) -> None:
    queue = board.queue
    job_id = queue.enqueue(
        {"type": "T" + HOSTILE, "note": HOSTILE, "queue": HOSTILE},
        job_id="id" + HOSTILE.replace("/", "|"),
        max_attempts=1,
    )
    queue.claim()
    queue.fail(job_id, HOSTILE)
    with board.state.taskset("acct" + HOSTILE, "set" + HOSTILE, tasks=["t" + HOSTILE]):
        pass
    pages = ["/", "/queue", "/queue/history", "/jobs/" + job_id.replace("|", "%7C")]
    for path in pages:
        page.goto(board.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("main script, main img").count() == 0, path
        assert "<script>window.__pwned = 1</script>" in page.locator("main").inner_text(), path
    # The live refresh puts the server's fragments into the page: inert there too.
    page.goto(board.url + "/queue")
    page.wait_for_function("document.querySelector('#queue-live').dataset.last !== undefined")
    assert page.evaluate("window.__pwned") is None


def test_a_post_without_a_valid_csrf_token_is_refused(board: Board, page) -> None:
    made = prepare(board.queue, board.state)
    page.goto(board.url + f"/jobs/{made['failed']}")  # the browser has its CSRF cookie
    url = board.url + f"/actions/jobs/{made['failed']}/retry"
    assert page.request.post(url, form={}).status == 403
    assert page.request.post(url, form={"csrf_token": "0" * 64}).status == 403
    # A token of another browser (another cookie) is refused too.
    other = page.context.browser.new_context()
    try:
        other_page = other.new_page()
        other_page.goto(board.url + "/")
        foreign = other_page.locator("meta[name=csrf-token]").get_attribute("content")
    finally:
        other.close()
    assert page.request.post(url, form={"csrf_token": foreign}).status == 403
    assert page.request.get(url).status == 405  # no state change by GET
    assert board.fresh_queue().get(made["failed"]).status is JobStatus.FAILED
    # Without any cookie (another site's form): refused.
    assert httpx.post(url, data={"csrf_token": foreign}).status_code == 403
    mine = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert page.request.post(url, form={"csrf_token": mine}).status == 200  # then redirected
    assert board.fresh_queue().get(made["failed"]).status is JobStatus.QUEUED


def _start_cli(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JOBLEDGER_DASHBOARD_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobledger", "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("  open ") or "every request needs" in line or "WARNING" in line:
            break
        if "read-only" in line and "--read-only" in args:
            break
    return proc, "".join(lines)


def _until_up(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the server process is starting: nothing to wait on here


def test_a_non_loopback_bind_needs_the_token(tmp_path: Path, page) -> None:
    queue_dir = tmp_path / "queue"
    jobledger.JobQueue(queue_dir).enqueue({"type": "T"})
    port = free_port()
    proc, said = _start_cli(
        ["--dir", str(queue_dir), "--host", "0.0.0.0", "--port", str(port)], tmp_path
    )
    try:
        token = re.search(r"\?token=(\S+)", said)
        assert token is not None, said
        base = f"http://127.0.0.1:{port}"
        _until_up(base + "/healthz")
        for path in ("/", "/queue", "/metrics", "/healthz", "/static/dashboard.css"):
            assert httpx.get(base + path).status_code == 401, path
        assert httpx.get(base + "/", params={"token": "wrong"}).status_code == 401
        bearer = {"Authorization": f"Bearer {token.group(1)}"}
        assert httpx.get(base + "/queue", headers=bearer).status_code == 200
        page.goto(base + "/queue")
        assert "401" in page.locator("body").inner_text()
        page.goto(base + "/queue?token=" + token.group(1))
        assert page.url == base + "/queue"  # the token left the address bar
        assert page.locator("h1").inner_text() == "Queue"
        page.goto(base + "/")  # the cookie carries it on
        assert page.locator("h1").inner_text() == "Overview"
    finally:
        proc.terminate()
        proc.wait(10)


def test_loopback_needs_no_token_and_no_auth_must_be_explicit(tmp_path: Path) -> None:
    queue_dir = tmp_path / "queue"
    jobledger.JobQueue(queue_dir).enqueue({"type": "T"})
    port = free_port()
    proc, said = _start_cli(["--dir", str(queue_dir), "--port", str(port), "--read-only"], tmp_path)
    try:
        _until_up(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/queue").status_code == 200
        assert "?token=" not in said
    finally:
        proc.terminate()
        proc.wait(10)
    port = free_port()
    args = ["--dir", str(queue_dir), "--host", "0.0.0.0", "--port", str(port), "--no-auth"]
    proc, said = _start_cli(args, tmp_path)
    try:
        assert "WARNING" in said
        _until_up(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/queue").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("backend", ["postgres"])
def test_no_page_shows_a_database_password(backend: str, pg_url: str, page) -> None:
    from tests.web.conftest import serve_board

    parts = urlsplit(pg_url)
    secret = "s3cret-pw"
    with_password = urlunsplit(
        parts._replace(netloc=f"postgres:{secret}@{parts.hostname}:{parts.port}")
    )
    board = serve_board(with_password, with_password)
    try:
        prepare(board.queue, board.state)
        for path in ("/", "/queue", "/queue/history", "/metrics", "/jobs/nope"):
            page.goto(board.url + path)
            assert secret not in page.content(), path
    finally:
        board.served.stop()
        board.queue.close()
        board.state.close()


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_security_headers_and_an_unreadable_store(pg_url: str) -> None:
    from starlette.testclient import TestClient

    from jobledger.web import create_app

    parts = urlsplit(pg_url)
    secret = "an0ther-pw"
    url = urlunsplit(parts._replace(netloc=f"postgres:{secret}@{parts.hostname}:{parts.port}"))
    with TestClient(create_app(url, url)) as client:  # a schema without tables
        answer = client.get("/queue", headers={"accept": "text/html"})
        assert answer.status_code == 503
        assert "jobledger db migrate" in answer.text and secret not in answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"


def test_the_pages_own_script_runs_under_its_policy(board: Board, browser) -> None:
    made = prepare(board.queue, board.state)
    context = browser.new_context()  # the Content Security Policy enforced
    try:
        page = context.new_page()
        page.goto(board.url + "/queue")
        # The live refresh (static/dashboard.js) ran and put the fragment in place.
        page.locator("#queue-live[data-last]").wait_for(state="attached", timeout=5000)
        assert made["failed"] in page.locator("#failed").inner_text()
    finally:
        context.close()
