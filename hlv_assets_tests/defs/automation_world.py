"""The world the automation tests share: one ephemeral instance, its registry, the sensors' cursors, emulated runs
(not collected: no tests here)."""

from __future__ import annotations

import dagster as dg

from hlv_assets.defs import automation

BASELINES = ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform")
RAW = (
    "chaosnli_mnli",
    "varierr_nli",
    "hlv_items",
    "chaos_dev",
    "chaos_test",
    "anli_test",
    "released_generations",
)
DEFAULT_SLUGS = ["gpt4o", "llama3", "mixtral", "smollm2-135m"]
JUDGE = {
    "slug": "tiny-judge",
    "backend": "transformers",
    "model": "tiny/judge",
    "capabilities": ["generate", "label_logits"],
}
GENERATOR = {"slug": "gen-only", "backend": "transformers", "model": "tiny/gen", "capabilities": ["generate"]}
RETIRED = {"slug": "old-judge", "backend": "transformers", "model": "tiny/old", "active": False}
#: A letter-mass floor no prompt reaches: the blocking `letter_mass` check fails.
FAIL_LETTER_MASS = {"ops": {"mjd": {"config": {"min_letter_mass": 1.0, "n_items": 1}}}}
ONE_ITEM = {"ops": {"mjd": {"config": {"n_items": 1}}}}


def _io(base):
    from hlv_assets.defs.io_managers import ParquetIOManager

    return ParquetIOManager(base_dir=str(base), profile="tiny")


class World:
    """One ephemeral instance, its registry, the two sensors' cursors and a way to emulate runs."""

    def __init__(self, defs, db_url: str):
        from hlv_assets.store.db import get_engine

        self.defs = defs
        self.engine = get_engine(db_url)
        self.db_url = db_url
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None
        self.sensor_cursor = None
        self.repo = defs.get_repository_def()
        self.checked: set[tuple[str, str | None]] = set()

    # -- the registry sensor, as the daemon applies its result
    def sync(self) -> list[tuple[str, str, list[str]]]:
        """("add" | "delete", partitions definition, keys) for each request the registry sensor returns."""
        sensor = self.defs.get_sensor_def(automation.REGISTRY_SENSOR)
        result = sensor(dg.build_sensor_context(instance=self.instance, repository_def=self.repo))
        requests = list(getattr(result, "dynamic_partitions_requests", None) or [])
        out = []
        for request in requests:
            name, keys = request.partitions_def_name, list(request.partition_keys)
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(name, keys)
                out.append(("add", name, keys))
            else:
                for key in keys:
                    self.instance.delete_dynamic_partition(name, key)
                out.append(("delete", name, keys))
        return out

    # -- one automation tick: the conditions (evaluate_automation_conditions) and the sensor's run requests
    def tick(self, sensor: bool = False) -> dict[str, set[str]]:
        """Requested partitions by asset; with `sensor`, the automation sensor ticks too (own cursor)."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        if sensor:
            self._sensor_tick()
        return {k.to_user_string(): set(v) for k, v in result._requested_partitions_by_asset_key.items() if v}

    def _sensor_tick(self) -> None:
        sensor = self.defs.get_sensor_def(automation.AUTOMATION_SENSOR)
        context = dg.build_sensor_context(
            instance=self.instance, repository_def=self.repo, cursor=self.sensor_cursor
        )
        self.sensor_result = sensor.evaluate_tick(context)
        self.sensor_cursor = self.sensor_result.cursor

    def requested_by_sensor(self) -> dict[str, set[str]]:
        """What the automation sensor's run requests (a backfill per tick) ask for."""
        out: dict[str, set[str]] = {}
        for request in self.sensor_result.run_requests:
            subset = request.asset_graph_subset
            if subset is not None:
                for key, partitions in subset.partitions_subsets_by_asset_key.items():
                    out.setdefault(key.to_user_string(), set()).update(partitions.get_partition_keys())
                for key in subset.non_partitioned_asset_keys:
                    out.setdefault(key.to_user_string(), set()).add(None)
            else:
                for key in request.asset_selection or []:
                    out.setdefault(key.to_user_string(), set()).add(request.partition_key)
        return out

    # -- emulated runs
    def report(self, asset: str, partition: str | None = None, checks: tuple[str, ...] = ()) -> None:
        from dagster._core.definitions.asset_checks.asset_check_evaluation import (
            AssetCheckEvaluationTargetMaterializationData,
        )

        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))
        if not checks:
            return
        self.checked.add((asset, partition))
        record = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records[0]
        target = AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        for check in checks:
            self.instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(asset),
                    check_name=check,
                    passed=True,
                    partition=partition,
                    target_materialization_data=target,
                )
            )

    def execute(self, requested: dict[str, set[str]]) -> None:
        """Emulate successful runs of everything requested (with passing checks). Dagster stores one runless
        check evaluation per check partition, so a partition whose checks were reported before is left as it
        is
        (its earlier materialization and passed checks stay the latest)."""
        for asset, partitions in requested.items():
            checks = (
                ("distribution_suite", "letter_mass")
                if asset == "mjd"
                else ("distribution_suite",)
                if asset == "baseline_distributions"
                else ()
            )
            for partition in partitions:
                if (asset, partition) not in self.checked:
                    self.report(asset, partition, checks)

    def materialize(self, selection: list[str], partition, items_dir, run_config=None):
        from hlv_assets.defs.llm_resource import LLMResource
        from hlv_assets.defs.resources import ResultStoreResource
        from hlv_assets.defs.resources_defs import default_resources

        resources = {
            **default_resources(),
            "io_manager": _io(items_dir),
            "results": ResultStoreResource(db_url=self.db_url),
            "llms": LLMResource(db_url=self.db_url),
        }
        return dg.materialize(
            list(self.defs.assets),
            selection=selection,
            partition_key=partition,
            instance=self.instance,
            resources=resources,
            run_config=run_config or {},
            raise_on_error=False,
        )
