"""The public surface: __all__ is complete and every public name is documented."""

from __future__ import annotations

import inspect

import jobledger


def test_all_lists_every_public_name():
    public = {
        n
        for n in dir(jobledger)
        if not n.startswith("_") and not inspect.ismodule(getattr(jobledger, n))
    }
    assert public <= set(jobledger.__all__)
    for name in jobledger.__all__:
        assert hasattr(jobledger, name), name


def test_every_public_name_has_a_docstring():
    for name in jobledger.__all__:
        obj = getattr(jobledger, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_errors_share_one_base():
    for name in (
        "AlreadyRunning",
        "ConfigError",
        "InvalidNameError",
        "InvalidPayload",
        "StorageError",
    ):
        assert issubclass(getattr(jobledger, name), jobledger.JobLedgerError)


def test_an_unstorable_payload_is_both_a_jobledger_error_and_the_promised_typeerror():
    assert issubclass(jobledger.InvalidPayload, TypeError)
    assert isinstance(jobledger.MAX_JSON_DEPTH, int) and 50 <= jobledger.MAX_JSON_DEPTH < 500
