"""Typed resources: settings (profile), the data source, the results store (IO managers: io_managers.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from hlv_assets.defs.settings import HLVSettings  # noqa: F401  (the settings resource lives in settings.py)
from hlv_assets.lib.datasource import DataSource
from hlv_assets.lib.settings import verify_mode
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import ResultStore


class DataSourceResource(dg.ConfigurableResource):
    """Raw data: `data_dir` (default `HLV_DATA_DIR`, else ../shared/data, else pinned upstream downloads)."""

    data_dir: str | None = None
    verify: str = Field(default_factory=verify_mode)  # HLV_VERIFY_DATA

    def source(self) -> DataSource:
        if self.data_dir:
            return DataSource(Path(self.data_dir), verify=self.verify)
        return DataSource.from_env()


class ResultStoreResource(dg.ConfigurableResource):
    """The results store (SQLModel): `db_url` (default `HLV_DB_URL`, else SQLite at data/hlv.db)."""

    db_url: str | None = None

    def engine(self):
        return get_engine(self.db_url or None)

    def store(self):
        return ResultStore(self.engine())
