"""Fixtures of the defs tests: an isolated HLV_HOME under the tiny profile with the SQLite store."""

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HLV_HOME in a temporary folder (tiny profile, SQLite store there); returns the temporary folder."""
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HLV_PROFILE", "tiny")
    monkeypatch.delenv("HLV_DB_URL", raising=False)
    return tmp_path
