"""Where asset values live: distributions in the results store (one copy, with lineage and history, read by
downstream as Dagster inputs), every other DataFrame as Parquet under data/assets."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from hlv_assets.defs.check_gate import is_forced
from hlv_assets.defs.lineage import combine_sha256
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.profiles import current_profile_name

#: Resource key of the IO manager of every distribution asset.
DISTRIBUTION_IO = "distribution_io_manager"
#: Item set of a distribution when its Output names none: the 341 items of the papers.
DEFAULT_ITEM_SET = "hlv341"
#: AssetIn metadata: load every mapped partition as {partition key: frame} (e.g. all five baselines).
BY_PARTITION = {"by_partition": True}


def _raw(value):
    return getattr(value, "value", value)


def _inputs_sha256(metadata) -> str:
    """The lineage's input hash from the Output's `inputs_sha256` metadata ({input: sha256}): the one hash
    when there is one input (as the rows recorded before the IO manager), else their combination."""
    inputs = _raw(metadata.get("inputs_sha256")) or {}
    if isinstance(inputs, str):
        return inputs
    return next(iter(inputs.values())) if len(inputs) == 1 else (combine_sha256(inputs) if inputs else "")


class DistributionIOManager(dg.IOManager):
    """Distribution frames (`uid, p_e, p_n, p_c`, and `conversion` for an MJD) in the results store's
    `distribution` table: the only copy. Each write makes a partition's rows current and keeps the replaced
    ones as history, with lineage (run id, code version, profile, inputs sha256, forced). An MJD frame is stored
    per conversion under `<asset>:<conversion>` and loaded back as one frame in the same shape.

    Output metadata it reads: `inputs_sha256` (as `frame_metadata` writes it) and `item_set` (default hlv341).
    An input declared with `metadata=BY_PARTITION` receives {partition key: frame}. Built by
    `distribution_io_manager` from the run's `results` and `settings` resources (so an override of either,
    e.g. another database in a test, applies to the distributions too)."""

    def __init__(self, results: ResultStoreResource, settings: HLVSettings):
        self.results, self.settings = results, settings

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame, got {type(obj).__name__}")
        asset = context.asset_key.to_user_string()
        partition = str(context.partition_key) if context.has_partition_key else ""
        meta = context.output_metadata or {}
        lineage = {"run_id": context.run_id, "code_version": context.asset_spec.code_version or "",
                   "inputs_sha256": _inputs_sha256(meta), "forced": is_forced(context.step_context.dagster_run)}
        item_set = str(_raw(meta.get("item_set")) or DEFAULT_ITEM_SET)
        if "conversion" in obj.columns:  # one set of rows per conversion, written together
            frames = {f"{asset}:{c}": part[["uid", "p_e", "p_n", "p_c"]]
                      for c, part in obj.groupby("conversion", sort=True)}
            retire = f"{asset}:"
        else:
            frames, retire = {asset: obj[["uid", "p_e", "p_n", "p_c"]]}, None
        self.results.store().replace_distributions(frames, partition_key=partition, profile=self.settings.profile,
                                                   item_set=item_set, lineage=lineage, retire_prefix=retire)
        keys = list(frames)
        context.add_output_metadata({
            "stored_in": dg.MetadataValue.text("results store, table `distribution` (current rows; history kept)"),
            "store_keys": dg.MetadataValue.json(keys), "item_set": item_set,
            **({"forced": True} if lineage["forced"] else {}),
        })

    def load_input(self, context: dg.InputContext):
        asset = context.asset_key.to_user_string()
        store = self.results.store()
        profile = self.settings.profile
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [""]
        frames = {}
        for key in keys:
            frame = store.distribution_frame(asset, key, profile)
            if frame.empty:
                where = f"{asset}[{key}]" if key else asset
                raise dg.Failure(f"no stored {where} (profile {profile}): materialize it first "
                                 f"(hlv run {asset}{' --partition ' + key if key else ''})")
            frames[key] = frame
        if (context.definition_metadata or {}).get("by_partition"):
            return frames
        if len(frames) != 1:
            raise dg.Failure(f"{asset}: {len(frames)} partitions mapped to one input; declare the input with "
                             "metadata=BY_PARTITION to receive them by key")
        return next(iter(frames.values()))


@dg.io_manager(required_resource_keys={"results", "settings"},
               description="distribution frames in the results store (one copy; lineage and history)")
def distribution_io_manager(init_context) -> DistributionIOManager:
    return DistributionIOManager(init_context.resources.results, init_context.resources.settings)


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
