"""The results store under test: SQLite in a temporary folder and the local PostgreSQL."""

import os
import uuid

import pytest

PG_URL = os.environ.get("HLV_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hlv.db'}"
    return PG_URL


@pytest.fixture
def unique():
    return uuid.uuid4().hex[:10]
