"""Typed resources: settings (profile), the data source, the results store, the asset IO manager."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from hlv_assets.lib.datasource import DataSource
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.profiles import Profile, current_profile_name, get_profile


class HLVSettings(dg.ConfigurableResource):
    """The run profile (`HLV_PROFILE`: tiny, demo, paper), honoured by CLI, UI and automation runs alike."""

    profile: str = Field(default_factory=current_profile_name)

    def get(self) -> Profile:
        return get_profile(self.profile)


class DataSourceResource(dg.ConfigurableResource):
    """Raw data: `data_dir` (default `HLV_DATA_DIR`, else ../shared/data, else pinned upstream downloads)."""

    data_dir: str | None = None
    verify: str = "strict"

    def source(self) -> DataSource:
        if self.data_dir:
            return DataSource(Path(self.data_dir), verify=self.verify)
        return DataSource.from_env()


class ResultStoreResource(dg.ConfigurableResource):
    """The results store (SQLModel): `db_url` (default `HLV_DB_URL`, else SQLite at data/hlv.db)."""

    db_url: str | None = None

    def engine(self):
        from hlv_assets.store.db import get_engine

        return get_engine(self.db_url or None)

    def store(self):
        from hlv_assets.store.results import ResultStore

        return ResultStore(self.engine())


class ParquetIOManager(dg.ConfigurableIOManager):
    """DataFrames as Parquet under `<base_dir>/<profile>/<asset>/<partition>.parquet` (no pickle)."""

    base_dir: str | None = None
    profile: str = Field(default_factory=current_profile_name)

    def _path(self, context) -> Path:
        base = Path(self.base_dir) if self.base_dir else output_dir() / "assets"
        path = base / self.profile / "/".join(context.asset_key.path)
        if context.has_asset_partitions:
            key = context.asset_partition_key
            key = "__".join(f"{k}={v}" for k, v in sorted(key.keys_by_dimension.items())) \
                if isinstance(key, dg.MultiPartitionKey) else str(key)
            return path / f"{key}.parquet"
        return path.with_suffix(".parquet")

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame, got {type(obj).__name__}")
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        obj.to_parquet(tmp, index=False)
        os.replace(tmp, path)  # a crash never leaves a half-written file
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"{path}: materialize {context.asset_key.to_user_string()} first")
        return pd.read_parquet(path)
