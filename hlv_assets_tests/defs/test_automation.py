"""Automation with an ephemeral instance: a new LLM in the registry becomes exactly the expected partition
requests and then run requests; a retired or generator-only LLM gets none; a failing blocking check on the
new LLM's MJD keeps its downstream (`mjd_comparison`, the fine-tunes) from running, in the same run and on
later ticks; the per-tick cap holds requests back without losing them.

Each test has its own instance and registry (SQLite under tmp_path). Upstream materializations that no test
needs the data of are reported as runless events; the MJD runs are real (tiny profile, 4 items) and read the
explanation sets the module fixture materialized once.
"""

from __future__ import annotations

import dagster as dg
import pytest

from hlv_assets.defs import automation
from hlv_assets.defs.partitions import judgment_key
from hlv_assets.runner import load_definitions

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


@pytest.fixture(scope="module")
def defs():
    return automation.with_registry_conditions(load_definitions())


@pytest.fixture(scope="module")
def items_dir(tmp_path_factory, data_dir):
    """hlv_items and explanation_sets[none, human] as Parquet (the inputs of the real MJD runs)."""
    from hlv_assets.defs.resources import ResultStoreResource
    from hlv_assets.defs.resources_defs import default_resources
    from hlv_assets.pipeline import sync_partitions
    from hlv_assets.store.db import get_engine

    base = tmp_path_factory.mktemp("automation-assets")
    url = f"sqlite:///{base / 'setup.db'}"
    resources = {**default_resources(), "io_manager": _io(base), "results": ResultStoreResource(db_url=url)}
    instance = dg.DagsterInstance.ephemeral()
    sync_partitions(instance, get_engine(url))
    assets = list(load_definitions().assets)
    assert dg.materialize(
        assets,
        selection=["chaosnli_mnli", "varierr_nli", "hlv_items"],
        instance=instance,
        resources=resources,
    ).success
    for source in ("none", "human"):
        assert dg.materialize(
            assets,
            selection=["explanation_sets"],
            partition_key=source,
            instance=instance,
            resources=resources,
        ).success
    return base


def _io(base):
    from hlv_assets.defs.resources import ParquetIOManager

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
    def sync(self) -> list[tuple[str, list[str]]]:
        sensor = self.defs.get_sensor_def(automation.REGISTRY_SENSOR)
        result = sensor(dg.build_sensor_context(instance=self.instance))
        requests = list(getattr(result, "dynamic_partitions_requests", None) or [])
        for request in requests:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)  # never a deletion
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return [(r.partitions_def_name, list(r.partition_keys)) for r in requests]

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


@pytest.fixture
def world(defs, tmp_path, monkeypatch):
    """The state after the main job: raw data, baselines (checks passed), the built-in explanation sources;
    automation has had its first tick (which, by design of `eager()`, requests nothing)."""
    url = f"sqlite:///{tmp_path / 'hlv.db'}"
    monkeypatch.setenv("HLV_DB_URL", url)  # what the registry-aware conditions and the sensor read
    monkeypatch.setenv("HLV_AUTOMATION_MAX_PER_TICK", "1000")
    w = World(defs, url)
    assert w.sync() == [("llm", DEFAULT_SLUGS), ("explanations", ["none", "human"])]
    for asset in RAW:
        w.report(asset)
    for source in BASELINES:
        w.report("baseline_distributions", source, ("distribution_suite",))
    w.report("distribution_comparison")
    for source in ("none", "human"):
        w.report("explanation_sets", source)
    assert w.tick(sensor=True) == {}
    return w


def _judged(slug: str) -> set[str]:
    return {str(judgment_key(slug, source)) for source in ("none", "human")}


def _finetunes(defs) -> list[str]:
    graph = defs.resolve_asset_graph()
    return sorted(
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if k.to_user_string().startswith("finetune_")
        and graph.get(k).partitions_def == graph.get(dg.AssetKey("mjd")).partitions_def
    )


def test_asset_modules_carry_the_registry_conditions_and_partitioned_checks():
    """The wiring the other tests rely on (they apply the conditions themselves, the checks they cannot)."""
    defs = load_definitions()
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    automated = [
        k
        for k in graph.get_all_asset_keys()
        if graph.get(k).automation_condition is not None and automation.llm_roles(graph.get(k).partitions_def)
    ]
    assert {"llm_generations", "explanation_sets", "mjd", "mjd_comparison"} <= {
        k.to_user_string() for k in automated
    }
    for key in automated:
        assert isinstance(graph.get(key).automation_condition, automation.RequestCap), key.to_user_string()
    for check in graph.get(dg.AssetKey("mjd")).check_keys:
        assert graph.get(check).partitions_def is not None, f"{check.to_user_string()} is not partitioned"
    sensors = {s.name: s for s in defs.sensors}
    assert sensors[automation.AUTOMATION_SENSOR].default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensors[automation.AUTOMATION_SENSOR], dg.AutomationConditionSensorDefinition)


def test_new_llm_yields_exactly_its_partitions_and_runs(world, defs):
    from hlv_assets.store import registry

    for spec in (JUDGE, GENERATOR, RETIRED):
        registry.upsert(world.engine, spec)
    # the retired slug gets no partition; nothing is ever deleted
    assert world.sync() == [("llm", ["gen-only", "tiny-judge"])]
    assert world.sync() == []

    requested = world.tick(sensor=True)
    expected = {
        "llm_generations": {"gen-only", "tiny-judge"},
        "mjd": _judged("tiny-judge"),  # gen-only has no label_logits: no MJD partition is requested for it
        "mjd_comparison": _judged("tiny-judge"),  # same tick: runs behind the MJD's blocking checks
        **{name: _judged("tiny-judge") for name in _finetunes(defs)},
    }
    assert requested == expected
    assert world.requested_by_sensor() == expected
    assert (
        len(world.sensor_result.run_requests) == 1
    )  # one backfill: dependencies ordered, partitions bounded
    assert world.tick() == {}  # requested once, not again


def test_retired_llm_stops_refreshing_but_keeps_partitions(world):
    from hlv_assets.store import registry

    registry.upsert(world.engine, JUDGE)
    world.sync()
    world.execute(world.tick())
    assert world.tick() == {}
    registry.set_active(world.engine, "tiny-judge", False)
    assert world.sync() == []
    assert "tiny-judge" in world.instance.get_dynamic_partitions("llm")

    world.report("hlv_items")  # new items: everything downstream is due, over the next ticks
    requested: dict[str, set[str]] = {}
    for _ in range(3):  # explanation sets this tick, the MJDs reading them on the next (another partitions
        tick = world.tick()  # definition: Dagster never puts them in one run), their comparison rows after
        world.execute(tick)
        for asset, partitions in tick.items():
            requested.setdefault(asset, set()).update(partitions)
    assert not [(a, p) for a, ps in requested.items() for p in ps if "tiny-judge" in (p or "")]
    assert requested["llm_generations"] == set(DEFAULT_SLUGS)  # the active generators
    assert requested["explanation_sets"] == {"none", "human"}
    assert requested["mjd"] == requested["mjd_comparison"] == _judged("smollm2-135m")  # the active judge left

    registry.upsert(world.engine, JUDGE)  # reactivated: what it missed is due again
    again = world.tick()
    assert again["llm_generations"] == {"tiny-judge"}
    assert again["mjd"] == _judged("tiny-judge")


def test_failing_blocking_check_keeps_downstream_from_running(world, defs, items_dir):
    from hlv_assets.store import registry

    registry.upsert(world.engine, JUDGE)
    world.sync()
    requested = world.tick()
    failing, passing = (str(judgment_key("tiny-judge", s)) for s in ("none", "human"))
    downstream = ["mjd_comparison", *_finetunes(defs)]
    assert all(failing in requested[name] for name in ["mjd", *downstream])

    # the run the tick asked for, with a letter-mass floor no prompt reaches
    result = world.materialize(["mjd", *downstream], failing, items_dir, FAIL_LETTER_MASS)
    assert not result.success
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks == {"distribution_suite": True, "letter_mass": False}
    materialized = {e.asset_key.to_user_string() for e in result.all_events if e.is_step_materialization}
    assert materialized == {"mjd"}  # the MJD is stored (and audited); nothing downstream ran on it

    # later ticks do not request the downstream of the failed partition, however often they look
    for _ in range(2):
        later = world.tick()
        assert not any(failing in later.get(name, set()) for name in downstream), later

    # the other partition of the same judge passes its checks: only its downstream becomes due
    assert world.materialize(["mjd"], passing, items_dir, ONE_ITEM).success
    later = world.tick()
    assert later["mjd_comparison"] == {passing}
    assert not any(failing in ps for ps in later.values())


def test_cap_holds_requests_back_and_releases_them_later(world, monkeypatch):
    from hlv_assets.store import registry

    monkeypatch.setenv("HLV_AUTOMATION_MAX_PER_TICK", "3")
    registry.upsert(world.engine, JUDGE)
    registry.upsert(world.engine, GENERATOR)
    world.sync()
    capped = ("llm_generations", "explanation_sets", "mjd", "mjd_comparison")
    seen: dict[str, list[str]] = {}
    per_tick = []
    for _ in range(8):
        requested = world.tick()
        if not requested:
            break
        mine = {a: ps for a, ps in requested.items() if a in capped}
        per_tick.append(sum(len(ps) for ps in mine.values()))
        for asset, partitions in mine.items():
            seen.setdefault(asset, []).extend(sorted(partitions))
        world.execute(requested)
    assert per_tick[0] == 3 and max(per_tick) <= 3 and sum(per_tick) == 6, (
        per_tick
    )  # held back, then released
    # everything a new judge and a new generator are due, each requested exactly once
    assert sorted(seen["llm_generations"]) == ["gen-only", "tiny-judge"]
    assert sorted(seen["mjd"]) == sorted(_judged("tiny-judge"))
    assert sorted(seen["mjd_comparison"]) == sorted(_judged("tiny-judge"))


def test_registry_sensor_syncs_yaml_defaults_on_its_cron(world, monkeypatch):
    import datetime as dt
    import json

    from hlv_assets.store import registry

    now = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
    cron = "0 4 * * *"
    assert automation._defaults_due(None, now, cron)
    synced_after_tick = json.dumps({"defaults_synced_at": (now - dt.timedelta(hours=7)).timestamp()})
    synced_before_tick = json.dumps({"defaults_synced_at": (now - dt.timedelta(hours=9)).timestamp()})
    assert not automation._defaults_due(synced_after_tick, now, cron)  # 05:00, after today's 04:00 tick
    assert automation._defaults_due(synced_before_tick, now, cron)  # 03:00, before it
    monkeypatch.setenv("HLV_REGISTRY_CRON", "not a cron")
    with pytest.raises(ValueError, match="HLV_REGISTRY_CRON"):
        automation.registry_cron()

    # what `hlv llm add` writes is picked up on the next tick, whether or not the YAML defaults are due
    registry.upsert(world.engine, GENERATOR)
    requests = automation.partition_requests(world.instance, world.engine, sync_defaults=False)
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in requests] == [("llm", ["gen-only"])]


def test_partition_rules():
    reg = {
        "j": automation.RegistryEntry("j", True, frozenset({"generate", "label_logits"})),
        "g": automation.RegistryEntry("g", True, frozenset({"generate"})),
        "r": automation.RegistryEntry("r", False, frozenset({"generate", "label_logits"})),
    }
    allowed = automation.partition_allowed
    assert allowed({"llm": "j", "source": "g.lf-first"}, reg, "label_logits")
    assert not allowed({"llm": "g", "source": "none"}, reg, "label_logits")  # no label logits
    assert not allowed({"llm": "r", "source": "human"}, reg, "label_logits")  # retired judge
    assert not allowed({"llm": "j", "source": "r.mnli-lg-longest"}, reg, "label_logits")  # retired generator
    assert not allowed({"llm": "unknown"}, reg, None)
    assert allowed({"source": "human@myset"}, reg, None)  # a registered item set's built-in source
    assert not allowed({"source": "r.lf-first@myset"}, reg, None)
    assert automation.source_generator("llama3.varierr-lg-first@myset") == "llama3"
