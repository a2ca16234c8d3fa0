"""Shared fixtures: the real data pack, an isolated output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hlv_assets.lib.paths import REPO_ROOT


def _data_dir() -> Path:
    env = os.environ.get("HLV_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "manifest.json").exists():
        raise RuntimeError(f"the data pack is missing at {path}: set HLV_DATA_DIR")
    return path
