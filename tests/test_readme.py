"""The README stays true: its examples run as written, its command-line table names
commands and options that exist, and its install lines work from a clone."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import jobledger
from jobledger.cli._app import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_RUN = "<!-- not run -->"

# The commands that work on task sets or a queue: the README says each takes --dir and
# --url after the subcommand too (demo, db and export take their places otherwise).
_PLACED = (
    "status",
    "show",
    "list",
    "stats",
    "cleanup",
    "reset",
    "du",
    "doctor",
    "worker",
    "jobs list",
    "jobs show",
    "jobs counts",
    "jobs top",
    "jobs enqueue",
    "jobs retry",
    "jobs cancel",
    "jobs prune",
    "jobs clear",
    "schedules list",
    "schedules remove",
)


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _markdown_files() -> list[Path]:
    return [README, ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks() -> list[tuple[str, bool]]:
    """Every ```python block of the README, in order, with whether it is marked as not run
    (a ``<!-- not run -->`` line just before it: it needs a service the tests lack)."""
    found = re.finditer(r"(?:^(<!-- not run -->)\n)?```python\n(.*?)```", _readme(), re.S | re.M)
    return [(m.group(2), m.group(1) is not None) for m in found]


def _block(marker: str) -> str:
    return next(code for code, _ in _python_blocks() if marker in code)


def _module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module to run examples in: dataclasses look their module up in sys.modules. The
    web-service example imports FastAPI, which the tests do not install: a stand-in that
    records the routes lets it run as written."""
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, "readme_example", module)
    fastapi = types.ModuleType("fastapi")

    class FastAPI:
        def __init__(self) -> None:
            self.routes: dict[tuple[str, str], object] = {}

        def _route(self, method: str, path: str):  # type: ignore[no-untyped-def]
            def register(fn):  # type: ignore[no-untyped-def]
                self.routes[(method, path)] = fn
                return fn

            return register

        def post(self, path: str):  # type: ignore[no-untyped-def]
            return self._route("POST", path)

        def get(self, path: str):  # type: ignore[no-untyped-def]
            return self._route("GET", path)

    fastapi.FastAPI = FastAPI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fastapi", fastapi)
    return module


def _run(code: str, namespace: dict[str, object]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, namespace)
    return out.getvalue()


def test_the_resumable_loop_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = _block("ts.pending()")
    first = _run(block, _module(monkeypatch).__dict__)
    tasks = ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"]
    assert [line for line in first.splitlines() if line.startswith("running ")] == [
        f"running {t}" for t in tasks
    ]
    second = _run(block, _module(monkeypatch).__dict__)  # a second run skips everything
    assert "running " not in second
    assert f"completed: {tasks}" in second


def test_the_queue_example_runs_as_written_and_finishes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = _block("Worker(")
    assert "run(until_empty=True)" in block
    out = _run(block, _module(monkeypatch).__dict__)
    job_id = "123e4567-e89b-12d3-a456-426614174000"
    queue = jobledger.JobQueue(tmp_path / "jobs-state")
    job = queue.get(job_id)
    assert job is not None
    assert job.status is jobledger.JobStatus.COMPLETED
    assert job.result == {"repo": f"models/{job_id}"}
    assert (tmp_path / "jobs-state" / "jobs" / f"{job_id}.json").exists()
    # What the README says the example prints, it prints.
    printed = out.strip().splitlines()[-1]
    assert printed == f"Completed 1 {{'repo': 'models/{job_id}'}}"
    assert printed in _readme()


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    """Blocks run in order in one namespace (a later one may use an earlier one's names);
    only blocks marked ``<!-- not run -->`` are skipped, and there must be few."""
    monkeypatch.chdir(tmp_path)
    namespace = _module(monkeypatch).__dict__
    blocks = _python_blocks()
    ran = skipped = 0
    for code, not_run in blocks:
        if not_run:
            compile(code, "README.md", "exec")  # still valid Python
            skipped += 1
            continue
        _run(code, namespace)
        ran += 1
    assert ran >= 2
    assert ran + skipped == len(blocks) == _readme().count("```python")
    assert skipped <= 1


def test_the_web_service_example_serves_its_routes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = _module(monkeypatch).__dict__
    _run(_block("AsyncJobQueue("), namespace)
    routes = namespace["app"].routes  # type: ignore[attr-defined]

    async def main() -> None:
        made = await routes[("POST", "/reports")]({"month": "2025-01"})
        sync = jobledger.JobQueue("reports-queue", durability="flush")
        jobledger.Worker(sync, {"Report": lambda job: {"rows": 3}}, handle_signals=False).run(
            until_empty=True
        )
        sync.close()
        assert await routes[("GET", "/reports/{job_id}")](made["job_id"]) == {
            "status": "done",
            "result": {"rows": 3},
        }
        await namespace["reports"].close()  # type: ignore[attr-defined]

    asyncio.run(main())


def _cli_rows() -> list[str]:
    """The first cells of the README's command-line table: ``jobledger ...`` synopses."""
    section = _readme().split("## Command line", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(jobledger [^`]*)` \|", section, re.M)


def _command_path(synopsis: str) -> tuple[str, ...]:
    """``jobledger jobs show JOB_ID [--json]`` -> ("jobs", "show")."""
    words = []
    for word in synopsis.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return tuple(words)


def _leaf_commands(group=cli, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        if sub is None:
            found.add((*prefix, name))
        else:
            found |= _leaf_commands(command, (*prefix, name))
    return found


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output)
    return result.output


def test_the_command_line_table_has_one_row_per_command():
    rows = [_command_path(row) for row in _cli_rows()]
    assert len(rows) == len(set(rows)), "a command has two rows"
    assert set(rows) == _leaf_commands()


def test_every_option_in_the_command_line_table_exists():
    """Each row's --options appear in that command's --help. Collects every miss, so one
    run names all the rows that are out of step with the CLI."""
    missing = []
    for row in _cli_rows():
        path = _command_path(row)
        text = _help(path)
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", row):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                missing.append(f"jobledger {' '.join(path)} {option}")
    assert not missing, "not in --help: " + ", ".join(missing)


def test_every_command_on_task_sets_or_a_queue_takes_dir_and_url_after_it():
    missing = [
        f"jobledger {name} {option}"
        for name in _PLACED
        for option in ("--dir", "--url")
        if not re.search(rf"(?<![\w-]){option}(?![\w-])", _help(tuple(name.split())))
    ]
    assert not missing, "not in --help: " + ", ".join(missing)


def test_install_lines_work_from_a_clone():
    """jobledger is not on a package index: every install line installs the clone."""
    for path in _markdown_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"pip install\s+['\"]?jobledger", text), path
        for line in re.findall(r"pip install[^\n`]*", text):
            assert " -e " in line, (path, line)


def test_the_first_screen_installs_and_runs_from_a_clone():
    first_screen = "\n".join(_readme().splitlines()[:40])
    for line in (
        "git clone <repository URL> jobledger && cd jobledger",
        "python3 -m venv .venv && . .venv/bin/activate",
        "pip install -e '.[cli]' && jobledger demo",
        "pip install -e '.[test]' && python3 -m pytest",
    ):
        assert line in first_screen


def test_markdown_speaks_in_its_own_words_and_links_resolve():
    for path in _markdown_files():
        text = path.read_text(encoding="utf-8")
        assert "the document" not in text.lower(), path
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (path.parent / target).exists(), (path, target)
