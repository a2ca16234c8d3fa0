"""First use of a fresh results database by two processes at once: table creation must not collide."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets_tests.store.conftest import PG_URL

# Both processes import everything first, then wait for the same instant, then create the tables.
FIRST_USE = """
import sys, time
from hlv_assets.store import item_sets
from hlv_assets.store.db import get_engine
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
item_sets.ensure_tables(get_engine(sys.argv[1]))
"""
TRIES = 10


def _first_use_race(url: str) -> list[subprocess.CompletedProcess]:
    start = time.time() + 5.0  # time enough for both to import
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_USE, url, str(start)], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "Error" in line] or stderr.splitlines() or [""]
    return lines[-1][:300]


@pytest.mark.postgres
def test_concurrent_first_use_of_a_fresh_postgres_database():
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    failures = []
    try:
        for n in range(TRIES):
            name = f"hlv_race_{os.getpid()}_{n}"
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(PG_URL).set(database=name)
            try:
                results = _first_use_race(url.render_as_string(hide_password=False))
                failures += [f"try {n}: {_error_line(r.stderr)}" for r in results if r.returncode]
                engine = create_engine(url)
                tables = set(inspect(engine).get_table_names())
                engine.dispose()
                assert {"distribution", "item", "item_set_version"} <= tables, tables
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
    assert not failures, failures


def test_concurrent_first_use_of_a_fresh_sqlite_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'hlv.db'}"
    results = _first_use_race(url)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
