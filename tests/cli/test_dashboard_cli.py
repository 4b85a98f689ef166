"""``jobledger dashboard``'s refusals, before anything is served."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from jobledger.cli._app import cli
from jobledger.cli._dashboard import is_loopback


def test_missing_web_extra_is_named(tmp_path, monkeypatch) -> None:
    (tmp_path / "q").mkdir()
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    result = CliRunner().invoke(cli, ["dashboard", "--dir", str(tmp_path / "q")])
    assert result.exit_code == 1
    assert "pip install -e '.[web]'" in result.output


def test_a_missing_folder_is_an_error(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--dir", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_token_and_no_auth_together_are_refused(tmp_path) -> None:
    (tmp_path / "q").mkdir()
    args = ["dashboard", "--dir", str(tmp_path / "q"), "--token", "abc", "--no-auth"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "not both" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
