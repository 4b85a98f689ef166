"""The model tests' fixture: a factory of fresh storage per example, per backend."""

from __future__ import annotations

import pytest

from tests.model._storage import BACKENDS, StorageFactory


@pytest.fixture(params=BACKENDS)
def model_storage(request: pytest.FixtureRequest, tmp_path) -> StorageFactory:
    database = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    return StorageFactory(request.param, tmp_path, database)
