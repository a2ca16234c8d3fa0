"""Shared fixtures: the real data pack, an isolated output folder, the `tiny` profile, one materialized graph.

Before anything of the package is imported, the session runs under HLV_PROFILE=tiny with HLV_HOME in a
temporary folder (so tests never touch data/), while converted models stay in data/models (converted once).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
os.environ["HLV_PROFILE"] = "tiny"
os.environ.setdefault("HLV_MODELS_DIR", str(_REPO / "data" / "models"))
os.environ["HLV_HOME"] = tempfile.mkdtemp(prefix="hlv-test-")
os.environ.pop("HLV_DB_URL", None)
os.environ.pop("DAGSTER_HOME", None)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from hlv_assets.lib.paths import REPO_ROOT  # noqa: E402


def _data_dir() -> Path:
    env = os.environ.get("HLV_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "manifest.json").exists():
        raise RuntimeError(f"the data pack is missing at {path}: set HLV_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def tiny_graph(data_dir):
    """The main job of the tiny profile, materialized once per session in an ephemeral Dagster instance
    (results store: SQLite under the session's HLV_HOME). Yields (instance, defs)."""
    import dagster as dg

    from hlv_assets.cli.run import load_definitions, run_main_job
    from hlv_assets.defs.partition_sync import sync_partitions

    instance = dg.DagsterInstance.ephemeral()
    defs = load_definitions()
    sync_partitions(instance, asset_graph=defs.resolve_asset_graph())
    report = run_main_job(instance, defs, "tiny", raise_on_error=True)
    assert all(ok for _, ok, _ in report)
    return instance, defs
