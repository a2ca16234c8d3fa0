"""Past one machine: Dagster's instance in PostgreSQL (deploy/dagster.production.yaml as shipped) with the
results store in PostgreSQL too, driven through `hlv run` subprocesses as an operator would; and runs writing
partitions of one asset at the same time, against SQLite and PostgreSQL, losing and duplicating nothing.

Each module run creates its own databases (`hlv_t<random>_dagster`, `hlv_t<random>_store`) and drops them at
the end, so nothing piles up in the shared `test` database. PostgreSQL missing is a failure, not a skip.
"""

import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest
from dagster._core.events import DagsterEventType

from hlv_assets.defs.partition_sync import sync_partitions
from hlv_assets.lib.distributions import baseline_distribution, distribution_frame
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.store.db import get_engine

pytestmark = pytest.mark.postgres

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ASSET = "baseline_distributions"
N_ITEMS = 341


@contextmanager
def _admin():
    try:
        conn = psycopg2.connect(dbname="test", connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} (`make postgres` starts it): {exc}")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        yield conn.cursor()
    finally:
        conn.close()


@dataclass
class Deployment:
    """One Dagster instance + one results store, and the environment `hlv` runs with against them."""

    name: str
    dagster_home: Path
    db_url: str
    env: dict

    def instance(self) -> dg.DagsterInstance:
        saved = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(self.dagster_home)  # the local template reads it (`env: DAGSTER_HOME`)
        try:
            return dg.DagsterInstance.from_config(str(self.dagster_home))
        finally:
            if saved is None:
                os.environ.pop("DAGSTER_HOME")
            else:
                os.environ["DAGSTER_HOME"] = saved

    def hlv(self, *commands: list[str]) -> subprocess.Popen:
        """One process running `hlv <command>` for each command in turn (one import of the stack for all)."""
        code = f"import sys; from hlv_assets.cli import main; sys.exit(max(main(a) for a in {list(commands)!r}))"
        return subprocess.Popen([sys.executable, "-c", code], env=self.env, cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def store_sql(self, sql: str, *params):
        if self.db_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(self.db_url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg2.connect(dbname=self.db_url.rsplit("/", 1)[1], **PG) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"`hlv run` failed ({proc.returncode}):\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def hlv_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hlv_home")


def _base_env(hlv_home: Path, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HLV_"))}
    return {**env, "HLV_PROFILE": "tiny", "HLV_HOME": str(hlv_home), "HLV_DATA_DIR": str(data_dir),
            "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory, hlv_home, data_dir):
    """A DAGSTER_HOME with deploy/dagster.production.yaml verbatim, and fresh databases for it and the store."""
    prefix = f"hlv_t{uuid.uuid4().hex[:10]}"
    dbs = {"dagster": f"{prefix}_dagster", "store": f"{prefix}_store"}
    with _admin() as cur:
        for db in dbs.values():
            cur.execute(f"CREATE DATABASE {db}")
    home = tmp_path_factory.mktemp("dagster_pg")
    shutil.copy(REPO_ROOT / "deploy" / "dagster.production.yaml", home / "dagster.yaml")
    pg_env = {"DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": str(PG["port"]), "DAGSTER_PG_USER": PG["user"],
              "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": dbs["dagster"]}
    db_url = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{dbs['store']}"
    env = {**_base_env(hlv_home, data_dir), **pg_env, "DAGSTER_HOME": str(home), "HLV_DB_URL": db_url}
    saved = {k: os.environ.get(k) for k in pg_env}
    os.environ.update(pg_env)  # this process reads the same instance YAML to check what the runs wrote
    try:
        yield Deployment("postgres", home, db_url, env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with _admin() as cur:
            for db in dbs.values():
                cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory, hlv_home, data_dir):
    """The local default: deploy/dagster.local.yaml (SQLite instance) and a SQLite results store."""
    home = tmp_path_factory.mktemp("dagster_sqlite")
    shutil.copy(REPO_ROOT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    db_url = f"sqlite:///{home / 'store.db'}"
    env = {**_base_env(hlv_home, data_dir), "DAGSTER_HOME": str(home), "HLV_DB_URL": db_url}
    return Deployment("sqlite", home, db_url, env)


@pytest.fixture(scope="module")
def postgres_first_run(postgres):
    """Raw data and one baseline partition materialized through `hlv run` into the PostgreSQL deployment."""
    started = time.perf_counter()
    out = _finish(postgres.hlv(["run", "chaosnli_mnli", "varierr_nli", "hlv_items", ASSET, "--partition", "uniform"]))
    return out, time.perf_counter() - started


def test_production_instance_runs_real_assets_in_postgres(postgres, postgres_first_run):
    out, seconds = postgres_first_run
    assert "4 steps" in out, out
    instance = postgres.instance()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 8
    # the `gpu` pool gets the default limit of one slot the first time it is used
    instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")
    assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1

    runs = instance.get_run_records()
    assert len(runs) == 4 and {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    for name, rows in [("chaosnli_mnli", 1599), ("varierr_nli", 500), ("hlv_items", N_ITEMS)]:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert event is not None, name
        assert event.asset_materialization.metadata["rows"].value == rows
    assert instance.get_materialized_partitions(dg.AssetKey(ASSET)) == {"uniform"}
    (record,) = instance.fetch_materializations(dg.AssetKey(ASSET), limit=10).records
    assert record.asset_materialization.partition == "uniform"
    checks = instance.get_records_for_run(record.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    assert [c.event_log_entry.dagster_event.event_specific_data.passed for c in checks] == [True]

    # The rows really are in PostgreSQL: Dagster's tables in one database, the store's in the other.
    with psycopg2.connect(dbname=postgres.env["DAGSTER_PG_DB"], **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 4
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] == 4
    rows = postgres.store_sql("SELECT p_e, p_n, p_c, profile, run_id FROM distribution "
                              "WHERE asset_key = %s AND partition_key = 'uniform' AND current", ASSET)
    assert len(rows) == N_ITEMS
    assert {r[:4] for r in rows} == {(1 / 3, 1 / 3, 1 / 3, "tiny")}
    assert {r[4] for r in rows} == {record.run_id}  # lineage: the store names the Dagster run that wrote it
    print(f"\npostgres: 4 steps through `hlv run` in {seconds:.1f}s")


def _time_with_two_running(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least two of the runs were in progress at once."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running, since, total = 0, 0.0, 0.0
    for t, step in edges:
        if running >= 2:
            total += t - since
        running, since = running + step, t
    return total


def _counts(deployment: Deployment, partition: str) -> tuple[int, int, int]:
    """(materialization events, current store rows, all store rows incl. history) of one partition."""
    instance = deployment.instance()
    events = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), asset_partitions=[partition]), limit=1000).records
    (current,), (total,) = (deployment.store_sql(
        f"SELECT count(*) FROM distribution WHERE asset_key = %s AND partition_key = %s{cond}", ASSET, partition)
        for cond in (" AND current", ""))
    return len(events), current[0], total[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_runs_lose_and_duplicate_nothing(backend, request, hlv_home):
    """Two processes at once, each `hlv run baseline_distributions --partition P` for `varierr` then `mnli`
    (the other in the opposite order), so different partitions and the same partition are written at the same
    time. Every run succeeds with exactly one materialization and a passed check; each partition ends with
    exactly its 341 current rows, with the right values, and the replaced write kept as history."""
    request.getfixturevalue("postgres_first_run")  # hlv_items.parquet (shared HLV_HOME) exists
    deployment: Deployment = request.getfixturevalue(backend)
    # The registry and the dynamic partitions exist before the race, as after any first `hlv run`.
    sync_partitions(deployment.instance(), get_engine(deployment.db_url))
    orders = [["varierr", "mnli"], ["mnli", "varierr"]]
    partitions = [p for order in orders for p in order]
    before = {p: _counts(deployment, p) for p in set(partitions)}
    known_runs = {r.dagster_run.run_id for r in deployment.instance().get_run_records()}

    started = time.perf_counter()
    procs = [deployment.hlv(*(["run", ASSET, "--partition", p] for p in order)) for order in orders]
    outputs = [_finish(p) for p in procs]
    seconds = time.perf_counter() - started

    instance = deployment.instance()
    new_runs = [r for r in instance.get_run_records() if r.dagster_run.run_id not in known_runs]
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in new_runs) == sorted(partitions)
    assert {r.dagster_run.status for r in new_runs} == {dg.DagsterRunStatus.SUCCESS}
    # the two processes' runs really overlapped in time (else this would test nothing)
    overlap = _time_with_two_running([(r.start_time, r.end_time) for r in new_runs])
    assert overlap > 0, f"the runs did not overlap: {[(r.start_time, r.end_time) for r in new_runs]}\n{outputs}"

    for run in new_runs:
        records = instance.get_records_for_run(run.dagster_run.run_id,
                                               of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        assert len(records) == 1
        assert records[0].event_log_entry.dagster_event.partition == run.dagster_run.tags["dagster/partition"]
        checks = instance.get_records_for_run(run.dagster_run.run_id,
                                              of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
        assert [c.event_log_entry.dagster_event.event_specific_data.passed for c in checks] == [True]

    items = pd.read_parquet(hlv_home / "assets" / "tiny" / "hlv_items.parquet")
    for partition in set(partitions):
        writes = partitions.count(partition)
        events, current, total = _counts(deployment, partition)
        assert events - before[partition][0] == writes  # nothing lost in Dagster's event log
        assert current == N_ITEMS  # nothing duplicated among the current rows ...
        assert total - before[partition][2] == N_ITEMS * writes  # ... and every write kept (as history)
        rows = deployment.store_sql("SELECT uid, p_e, p_n, p_c FROM distribution WHERE asset_key = %s "
                                    "AND partition_key = %s AND current", ASSET, partition)
        got = pd.DataFrame(rows, columns=["uid", "p_e", "p_n", "p_c"]).sort_values("uid").reset_index(drop=True)
        want = distribution_frame(items.uid, baseline_distribution(items, partition))
        want = want.assign(uid=want.uid.astype(str)).sort_values("uid").reset_index(drop=True)
        assert got.uid.is_unique and list(got.uid) == list(want.uid)
        pd.testing.assert_frame_equal(got[["p_e", "p_n", "p_c"]], want[["p_e", "p_n", "p_c"]], atol=1e-12)
    print(f"\n{backend}: 2 processes x 2 runs in {seconds:.1f}s, runs of both in progress for {overlap:.1f}s")
