"""Hostile input on the command line: a one-line message and exit 2, never a traceback;
and the ``jobledger`` command without the ``[cli]`` extra says what to install.

Issue 12, point 4. Bytes that are not UTF-8 reach a real process's argv (Python hands them
over as lone surrogates), so those cases run ``python -m jobledger`` in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import jobledger
from jobledger import JobQueue
from jobledger.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SRC = str(Path(jobledger.__file__).resolve().parents[1])  # the jobledger under test


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC}


def run_cli(*args: str | bytes, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger", *args],
        input=input,
        capture_output=True,
        env=_env(),
        check=False,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def _deep_json(levels: int) -> str:
    return '{"a": ' + "[" * levels + "]" * levels + "}"


@pytest.fixture
def qdir(tmp_path: Path) -> Path:
    folder = tmp_path / "q"
    with JobQueue(folder, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="existing")
    return folder


def _nothing_enqueued(qdir: Path) -> None:
    with JobQueue(qdir, durability="flush") as q:
        assert [j.job_id for j in q.list()] == ["existing"]


def _usage_error(proc: subprocess.CompletedProcess[str], *wanted: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.lower().startswith("error")]
    assert len(error) == 1, proc.stderr  # the message is one line
    for text in wanted:
        assert text in error[0], proc.stderr


def test_a_payload_argument_that_is_not_utf8_is_a_usage_error(qdir: Path) -> None:
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), "T", "--payload", b'{"a": "caf\xe9"}')
    _usage_error(proc, "--payload", "not UTF-8", "byte 0xe9")
    _nothing_enqueued(qdir)


def test_a_job_type_or_id_that_is_not_utf8_is_an_error_naming_it(qdir: Path) -> None:
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), b"T\xff")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "job type" in proc.stderr and "lone surrogate" in proc.stderr
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), "T", "--id", b"id\xff")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "job id" in proc.stderr
    proc = run_cli("jobs", "show", "--dir", str(qdir), b"id\xff")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    _nothing_enqueued(qdir)


def test_a_payload_file_5000_deep_is_a_usage_error(qdir: Path, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(_deep_json(5000))
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), "T", "--payload-file", str(deep))
    _usage_error(proc, "--payload-file", "nested too deeply", "200 levels")
    _nothing_enqueued(qdir)


def test_a_payload_file_past_the_depth_limit_is_a_usage_error(qdir: Path, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(_deep_json(300))  # readable, but deeper than jobledger stores
    result = CliRunner().invoke(
        cli, ["jobs", "enqueue", "--dir", str(qdir), "T", "--payload-file", str(deep)]
    )
    assert result.exit_code == 2, result.output
    assert "nested deeper than 200 levels" in result.output
    _nothing_enqueued(qdir)


@pytest.mark.parametrize(
    "content, wanted",
    [
        (b'{"a": "caf\xe9"}', "not UTF-8 text (byte 0xe9 at offset 10)"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"not json", "is not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"a": NaN}', "is nan"),
        (b'{"a": "x\\u0000"}', "NUL character"),
    ],
)
def test_a_payload_file_that_cannot_be_stored_is_a_usage_error(
    qdir: Path, tmp_path: Path, content: bytes, wanted: str
) -> None:
    path = tmp_path / "payload.json"
    path.write_bytes(content)
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), "T", "--payload-file", str(path))
    _usage_error(proc, wanted)
    proc = run_cli("jobs", "enqueue", "--dir", str(qdir), "T", "--payload-file", "-", input=content)
    _usage_error(proc, wanted)
    _nothing_enqueued(qdir)


# -- without the [cli] extra ------------------------------------------------------------------

MISSING = (
    "jobledger: the command line needs the [cli] extra: pip install -e '.[cli]' "
    "(from a clone of jobledger)"
)


def _console_script() -> tuple[str, str]:
    """(module, function) of the ``jobledger`` console script in pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^jobledger = "([\w.]+):(\w+)"$', text, re.MULTILINE)
    assert found, "no jobledger console script in pyproject.toml"
    return found.group(1), found.group(2)


def _run_entry_point(hidden: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's function as the installed command does, with the module
    ``hidden`` made unimportable (as if the extra were not installed)."""
    module, function = _console_script()
    code = (
        "import sys\n"
        + (f"sys.modules[{hidden!r}] = None  # import {hidden} fails\n" if hidden else "")
        + f"sys.argv = ['jobledger', *{list(args)!r}]\n"
        + f"import {module}\n"
        + f"{module}.{function}()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("hidden", ["click", "rich"])
def test_the_command_without_the_cli_extra_says_what_to_install(hidden: str) -> None:
    proc = _run_entry_point(hidden, "--version")
    assert proc.returncode == 1
    assert proc.stderr.strip() == MISSING
    assert proc.stdout == ""


def test_the_command_with_the_cli_extra_runs() -> None:
    proc = _run_entry_point(None, "--version")
    assert proc.returncode == 0, proc.stderr
    assert jobledger.__version__ in proc.stdout


def test_python_dash_m_jobledger_without_click_says_what_to_install() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runpy; sys.modules['click'] = None; "
            "runpy.run_module('jobledger', run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.strip() == MISSING
