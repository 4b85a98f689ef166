"""The dashboard's browser tests: a dashboard served by uvicorn in a thread on a free
port, over a prepared folder or a PostgreSQL schema, and Playwright's Chromium (the
system's, ``/usr/bin/chromium``, headless; never a downloaded browser).

Without Chromium or Playwright the browser tests are skipped with the reason, except
under CI=true, where that is a failure. Screenshots of the main pages go to
``$JOBLEDGER_SCREENSHOTS`` when set, else to pytest's temporary folder: never the repo.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import jobledger

CHROMIUM = os.environ.get("JOBLEDGER_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"

if not IN_CI:  # under CI=true a missing [web] extra fails at the import below
    pytest.importorskip("starlette", reason="the [web] extra is not installed")
import uvicorn  # noqa: E402

from jobledger.web import create_app  # noqa: E402


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true requires the browser tests to run")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """An ASGI app served by uvicorn in a thread of this process, until :meth:`stop`."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.host = host
        # The socket listens before the server's thread starts: a request made at once
        # waits in its backlog, so there is nothing to wait for here.
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, 0))
        self.socket.listen(128)
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@dataclass
class Board:
    """A served dashboard and what it shows: its queue and task sets, opened again here
    as another process would (the tests check actions through these)."""

    url: str
    queue: jobledger.JobQueue
    state: jobledger.JobState
    location: str
    state_location: str
    served: Served
    extra: dict[str, Any] = field(default_factory=dict)

    def fresh_queue(self) -> jobledger.JobQueue:
        """A new JobQueue on the same storage (reads what is stored now)."""
        return jobledger.JobQueue(self.location, durability="flush")


def serve_board(queue_location: str, state_location: str, **options: Any) -> Board:
    """A dashboard (``create_app(**options)``, ``host=`` aside) served over these
    locations, with a queue and a JobState of the test's own on them (the same
    ``clock=`` if given). Stop it with ``board.served.stop()`` (fixtures do)."""
    host = options.pop("host", "127.0.0.1")
    clock = options.get("clock")
    extra = {"clock": clock} if clock is not None else {}
    queue = jobledger.JobQueue(queue_location, durability="flush", **extra)
    queue.recover()  # the first write: a database gets its tables
    state = jobledger.JobState(state_location, durability="flush", **extra)
    app = create_app(
        jobledger.JobQueue(queue_location, durability="flush", **extra),
        jobledger.JobState(state_location, **extra),
        **options,
    )
    served = Served(app, host)
    return Board(served.url, queue, state, queue_location, state_location, served)


def _locations(request: pytest.FixtureRequest, backend: str) -> tuple[str, str]:
    if backend == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url, url
    tmp: Path = request.getfixturevalue("tmp_path")
    (tmp / "queue").mkdir()
    (tmp / "state").mkdir()
    return str(tmp / "queue"), str(tmp / "state")


@pytest.fixture
def make_board(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``make_board(backend, **create_app_options)``: a served Board on ``"files"`` (a
    prepared folder: ``queue/`` and ``state/``) or ``"postgres"`` (one schema)."""
    made: list[Board] = []

    def make(backend: str, **options: Any) -> Board:
        board = serve_board(*_locations(request, backend), **options)
        made.append(board)
        return board

    yield make
    for board in made:
        board.served.stop()
        board.queue.close()
        board.state.close()


@pytest.fixture(params=["files", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    name: str = request.param
    return name


@pytest.fixture
def board(make_board: Any, backend: str) -> Board:
    """A dashboard over each backend in turn, with the default options."""
    made: Board = make_board(backend)
    return made


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Chromium, headless, driven by Playwright's sync API (one per test run)."""
    _need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (pip install playwright)")
        raise
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (its own context: cookies of its own). The page's Content
    Security Policy is bypassed: Playwright's waits evaluate scripts, and the tests of
    escaping must hold without the policy's help."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of the main pages go (outside the repository)."""
    where = os.environ.get("JOBLEDGER_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
