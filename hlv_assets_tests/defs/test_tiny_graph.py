"""The whole main job of the tiny profile in an ephemeral instance: tables, lineage, gates, paid-once."""

import dagster as dg
import pandas as pd
import pytest

from hlv_assets.defs.partitions import judgment_key
from hlv_assets.defs.resources_defs import default_resources
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import ResultStore, SqlCallStore
from hlv_assets.store.tables import table_records


@pytest.fixture(scope="module")
def store(tiny_graph):
    return ResultStore(get_engine())


def test_comparison_table_has_baselines_and_mjd_rows(store):
    rows = table_records(store, "distribution-comparison", "tiny")
    full = {r["source"]: r for r in rows if r["n"] == 341}
    assert set(full) == {"chaosnli", "varierr", "mnli", "mnli-onehot", "uniform"}
    assert round(full["varierr"]["kl"], 5) == 3.60366 and round(full["mnli"]["tvd"], 5) == 0.21472
    mjd = [r for r in rows if r["source"] == "mjd"]
    assert {r["explanations"] for r in mjd} >= {"none", "human", "llama3.varierr-lg-first"}
    for r in mjd:  # every MJD row has baselines on exactly its items
        same_items = {x["source"] for x in rows if x["items_sha256"] == r["items_sha256"] and x["source"] != "mjd"}
        assert same_items == {"chaosnli", "varierr", "mnli", "mnli-onehot", "uniform"}
        assert r["llm"] == "smollm2-135m" and r["conversion"] in ("softmax", "normalize") and r["n"] == 4
        assert r["missing_letters"] == "refuse"  # the rule its judgment records were converted with
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))


def test_rows_carry_lineage(store, tiny_graph):
    instance, _ = tiny_graph
    for row in store.current_rows("distribution_comparison", "tiny"):
        assert row.run_id and instance.get_run_by_id(row.run_id) is not None
        assert row.code_version.endswith("+tiny") and row.inputs_sha256 and row.created_at


def test_rerun_of_a_judgment_makes_no_llm_call(tiny_graph, store):
    instance, defs = tiny_graph
    calls_before = SqlCallStore(get_engine()).count()
    result = dg.materialize(list(defs.assets), selection="mjd", instance=instance, resources=default_resources(),
                            partition_key=judgment_key("smollm2-135m", "human"))
    meta = result.asset_materializations_for_node("mjd")[0].metadata
    assert meta["llm_calls"].value == 0 and meta["cache_hits"].value > 0
    assert SqlCallStore(get_engine()).count() == calls_before


def test_a_failing_blocking_check_stops_downstream_in_the_same_run(tiny_graph, monkeypatch):
    instance, defs = tiny_graph
    import hlv_assets.defs.judgments.run as judgments

    def broken(records, temperature=20.0):
        frame = pd.DataFrame({"uid": ["x", "y"], "conversion": "softmax", "p_e": [0.5, 0.2],
                              "p_n": [0.3, 0.3], "p_c": [0.18, 0.5]})  # first row sums to 0.98
        return frame, {}

    monkeypatch.setattr(judgments, "mjd_frames", broken)
    result = dg.materialize(list(defs.assets), selection="mjd*", instance=instance, resources=default_resources(),
                            partition_key=judgment_key("smollm2-135m", "none"), raise_on_error=False)
    assert not result.success
    checks = [e for e in result.get_asset_check_evaluations() if e.check_name == "distribution_suite"]
    assert checks and not checks[0].passed
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "mjd_comparison" not in done


def test_every_run_of_the_main_job_carries_its_profile_and_invocation(tiny_graph):
    from hlv_assets.defs.jobs import main_plan

    instance, _ = tiny_graph
    runs = [r for r in instance.get_runs() if r.tags.get("hlv/job") == "main_tiny"]
    assert len(runs) == len(main_plan("tiny"))
    assert {r.tags["hlv/profile"] for r in runs} == {"tiny"}
    assert len({r.tags["hlv/invocation"] for r in runs}) == 1  # one `hlv run`, one group
    assert {r.job_name for r in runs} == {"__ASSET_JOB"}  # the job an asset backfill launches too


def test_the_jobs_page_main_job_submits_the_same_plan_as_one_backfill(tiny_graph):
    from hlv_assets.defs.jobs import main_plan, submit_main_backfill

    instance, defs = tiny_graph
    assert {"main_tiny", "registry_refresh"} <= {j.name for j in defs.resolve_all_job_defs()}
    backfill_id = submit_main_backfill(instance, defs.resolve_asset_graph(), "tiny", invocation="test")
    backfill = instance.get_backfill(backfill_id)
    assert backfill.tags == {"hlv/profile": "tiny", "hlv/invocation": "test", "hlv/job": "main_tiny"}
    subset = backfill.asset_backfill_data.target_subset
    planned = {(s.asset, s.partition) for s in main_plan("tiny")}
    assert subset.num_partitions_and_non_partitioned_assets == len(planned)
    targets = {k.to_user_string() for k in subset.asset_keys}
    assert targets == {a for a, _ in planned}


def test_a_trial_judges_the_first_n_items_and_the_full_run_follows(tiny_graph, store, capsys):
    """`hlv run mjd --items 2`: the stored MJD holds the first 2 items; the full run afterwards all 4; both
    write a progress line in items."""
    from hlv_assets.cli.run import run_steps
    from hlv_assets.defs.jobs import Step

    instance, defs = tiny_graph
    key = str(judgment_key("smollm2-135m", "human"))
    step = Step("mjd", "smollm2-135m/human")
    run_steps([step], instance=instance, defs=defs, judge_items=2)
    trial = store.distribution_frame("mjd", key, "tiny")
    assert not trial.empty and trial.groupby("conversion").size().eq(2).all()
    assert "2/2 items (100%)" in capsys.readouterr().err
    run_steps([step], instance=instance, defs=defs)
    full = store.distribution_frame("mjd", key, "tiny")
    assert full.groupby("conversion").size().eq(4).all()
    assert list(full.uid.unique()[:2]) == list(trial.uid.unique())
    assert "4/4 items (100%)" in capsys.readouterr().err
