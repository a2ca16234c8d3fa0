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

from hlv_assets.cli.run import load_definitions
from hlv_assets.defs import automation, partition_sync
from hlv_assets.defs.partitions import judgment_key
from hlv_assets.llm.registry import RegistryEntry
from hlv_assets_tests.defs.automation_world import (
    BASELINES,
    DEFAULT_SLUGS,
    FAIL_LETTER_MASS,
    GENERATOR,
    JUDGE,
    ONE_ITEM,
    RAW,
    RETIRED,
    World,
    _io,
)


@pytest.fixture(scope="module")
def defs():
    return automation.with_registry_conditions(load_definitions())


@pytest.fixture(scope="module")
def items_dir(tmp_path_factory, data_dir):
    """hlv_items and explanation_sets[none, human] as Parquet (the inputs of the real MJD runs)."""
    from hlv_assets.defs.partition_sync import sync_partitions
    from hlv_assets.defs.resources import ResultStoreResource
    from hlv_assets.defs.resources_defs import default_resources
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



@pytest.fixture
def world(defs, tmp_path, monkeypatch):
    """The state after the main job: raw data, baselines (checks passed), the built-in explanation sources;
    automation has had its first tick (which, by design of `eager()`, requests nothing)."""
    url = f"sqlite:///{tmp_path / 'hlv.db'}"
    monkeypatch.setenv("HLV_DB_URL", url)  # what the registry-aware conditions and the sensor read
    monkeypatch.setenv("HLV_AUTOMATION_MAX_PER_TICK", "1000")
    w = World(defs, url)
    assert w.sync() == [("add", "generators", DEFAULT_SLUGS), ("add", "judges", ["smollm2-135m"]),
                        ("add", "explanations", ["none", "human"])]  # the released replays cannot judge
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
    # the retired slug gets no partition, the generator-only one no judge partition
    assert world.sync() == [("add", "generators", ["gen-only", "tiny-judge"]), ("add", "judges", ["tiny-judge"])]
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
    assert world.tick() == {"paper_report": {None}, "ternary_plots": {None}}  # new MJDs: the summaries refresh
    world.execute({"paper_report": {None}, "ternary_plots": {None}})
    assert world.tick() == {}
    registry.set_active(world.engine, "tiny-judge", False)
    assert world.sync() == []  # materialized before: its keys stay, with their history
    assert "tiny-judge" in world.instance.get_dynamic_partitions("judges")

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
    assert not materialized & set(downstream)  # nothing downstream ran on it (the MJD itself: A2's commit rule)

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


def test_registry_refresh_schedule_and_sensor(world, defs, monkeypatch):
    from hlv_assets.defs.schedules import REGISTRY_SCHEDULE
    from hlv_assets.store import registry

    schedule = defs.get_schedule_def(REGISTRY_SCHEDULE)
    assert (schedule.cron_schedule, schedule.job_name) == ("0 4 * * *", "registry_refresh")
    # the scheduled job: a retired LLM without history leaves `generators` (and its sources), a new one comes in
    registry.upsert(world.engine, GENERATOR)
    world.instance.add_dynamic_partitions("explanations", ["gen-only.lf-first"])
    assert defs.resolve_job_def("registry_refresh").execute_in_process(instance=world.instance).success
    assert "gen-only" in world.instance.get_dynamic_partitions("generators")
    registry.set_active(world.engine, "gen-only", False)
    assert world.sync() == [("delete", "generators", ["gen-only"]), ("delete", "explanations", ["gen-only.lf-first"])]
    assert "gen-only" not in world.instance.get_dynamic_partitions("generators")
    monkeypatch.setenv("HLV_REGISTRY_CRON", "not a cron")
    with pytest.raises(ValueError, match="HLV_REGISTRY_CRON"):
        automation.registry_cron()

    # what `hlv llm add` writes is picked up on the next tick, whether or not the YAML defaults are due
    registry.upsert(world.engine, GENERATOR)
    plan = partition_sync.plan_sync(world.instance, world.engine, sync_defaults=False)
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in plan.requests()] == [
        ("generators", ["gen-only"])]


def test_partition_rules():
    reg = {
        "j": RegistryEntry("j", True, frozenset({"generate", "label_logits"})),
        "g": RegistryEntry("g", True, frozenset({"generate"})),
        "r": RegistryEntry("r", False, frozenset({"generate", "label_logits"})),
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


def test_one_cheap_click_starts_nothing_certain_to_fail(world, items_dir, monkeypatch):
    """The UI scenario of issue 11: after the main job, `baseline_distributions[uniform]` is launched again;
    automation ticks on the real definitions (their own registry-aware conditions). Without HLV_BERT_MNLI /
    HLV_ROBERTA_MNLI no BERT/RoBERTa fine-tune exists to start, and no judging partition names an LLM that
    cannot judge (the released replays) or is retired."""
    from hlv_assets.store import registry

    monkeypatch.delenv("HLV_BERT_MNLI", raising=False)
    monkeypatch.delenv("HLV_ROBERTA_MNLI", raising=False)
    defs = load_definitions()
    names = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert not {n for n in names if n.startswith(("finetune_bert", "finetune_roberta"))}
    registry.upsert(world.engine, RETIRED)
    world.defs = defs
    world.cursor = None
    assert world.tick() == {}  # the first evaluation of these conditions: nothing is newly missing
    assert world.materialize(["baseline_distributions"], "uniform", items_dir).success  # the click (with its check)
    first = world.tick()
    # its table, the MiniLM fine-tune on it (configured: embedded) and the report reading both, in one backfill
    assert first == {"distribution_comparison": {None}, "finetune_minilm_baseline": {"uniform"},
                     "paper_report": {None}}
    seen = {asset: set(partitions) for asset, partitions in first.items()}
    requested = first
    for _ in range(3):  # the runs succeed; what do the next ticks ask for?
        world.execute(requested)
        requested = world.tick()
        for asset, partitions in requested.items():
            seen.setdefault(asset, set()).update(partitions)
    assert set(world.instance.get_dynamic_partitions("judges")) == {"smollm2-135m"}
    graph = defs.resolve_asset_graph()
    for asset, partitions in seen.items():
        assert asset in names
        pdef = graph.get(dg.AssetKey(asset)).partitions_def
        if isinstance(pdef, dg.MultiPartitionsDefinition) and "judge" in pdef.partition_dimension_names:
            judges = {pdef.get_partition_key_from_str(p).keys_by_dimension["judge"] for p in partitions}
            assert judges <= {"smollm2-135m"}, (asset, partitions)


def test_item_set_registered_before_the_first_evaluation_is_picked_up(world):
    """`eager()` alone skips partitions that exist when it is first evaluated: a set added with `hlv items add`
    before the UI started stayed "Never materialized". `new_partition_condition` requests it once."""
    world.instance.add_dynamic_partitions("item_sets", ["myset"])
    world.cursor = None  # a fresh automation cursor: the UI's first tick
    assert world.tick().get("item_set") == {"myset"}
    assert "item_set" not in world.tick()  # requested once, not again while it runs (or after it failed)
    world.report("item_set", "myset")
    assert "item_set" not in world.tick()
