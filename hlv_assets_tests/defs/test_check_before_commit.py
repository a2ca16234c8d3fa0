"""Check before commit: a distribution that fails its blocking check is never stored (SQLite and PostgreSQL), the
failed check shows its offending items, `hlv run`'s gate refuses downstream in one line, `--force` is recorded,
and exports stay valid JSON/CSV."""

import csv
import io
import json
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import psycopg2
import pytest

import hlv_assets.defs.baselines.assets as baselines
import hlv_assets.defs.judgments.run as judgments
from hlv_assets.audit import audit
from hlv_assets.cli.run import Step, run_steps
from hlv_assets.defs.check_gate import FORCED_TAGS, BlockedByFailedCheck, blocking_check_refusals, gate_tags
from hlv_assets.defs.partitions import judgment_key
from hlv_assets.defs.resources import ResultStoreResource
from hlv_assets.defs.resources_defs import default_resources
from hlv_assets.store.db import get_engine
from hlv_assets.store.export import export_asset
from hlv_assets.store.results import ResultStore

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
CHECK = "distribution_suite"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh results store: SQLite in a temporary folder, or a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    name = f"hlv_cbc_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        get_engine(f"{PG}/{name}").dispose()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _run(defs, selection, instance, resources, partition=None, tags=None):
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection, instance=instance,
                          resources=resources, partition_key=partition, raise_on_error=False, tags=tags)


def _broken_uniform(items: pd.DataFrame, source: str) -> np.ndarray:
    out = np.full((len(items), 3), 1.0 / 3.0)
    out[0] = [np.nan, 0.5, 0.5]  # a NaN
    out[1] = [0.5, 0.5, 0.5]  # sums to 1.5
    return out


def _check_evaluation(instance, asset: str, partition: str | None):
    key = dg.AssetCheckKey(dg.AssetKey(asset), CHECK)
    from dagster._core.event_api import PartitionKeyFilter

    [record] = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, partition_filter=PartitionKeyFilter(key=partition))
    return record


def test_a_bad_baseline_is_never_stored_and_blocks_downstream(tiny_graph, db_url, monkeypatch):
    _, defs = tiny_graph
    instance = dg.DagsterInstance.ephemeral()
    resources = {**default_resources(), "results": ResultStoreResource(db_url=db_url)}
    store = ResultStore(get_engine(db_url))
    graph = defs.resolve_asset_graph()
    for source in ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform"):  # a good current version first
        assert _run(defs, "baseline_distributions", instance, resources, source).success
    good = _run(defs, "distribution_comparison", instance, resources)
    assert good.success
    before = store.distribution("baseline_distributions", "uniform", "tiny")
    before_rows = {r.row_id: (r.run_id, r.data) for r in store.current_rows("distribution_comparison", "tiny")}
    assert len(before) == 341 and len(before_rows) == 5

    monkeypatch.setattr(baselines, "baseline_distribution", _broken_uniform)
    bad = _run(defs, "baseline_distributions", instance, resources, "uniform")
    assert not bad.success
    # Dagster records the failed check (the asset page shows it) and no materialization of the bad value
    [evaluation] = bad.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.check_name == CHECK
    assert evaluation.metadata["offending_count"].value == 2
    offending = {o["uid"]: o["reason"] for o in evaluation.metadata["offending"].value}
    uids = list(before.uid)
    assert offending == {uids[0]: "p_e is NaN", uids[1]: "row sums to 1.5, not 1 (tolerance 1e-06)"}
    assert evaluation.description.startswith(f"2 item(s) are not distributions, e.g. uid {uids[0]}")
    assert bad.get_asset_materialization_events() == []
    failure = next(e for e in bad.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "baseline_distributions[uniform] failed its blocking check(s), nothing was stored" in message
    assert _check_evaluation(instance, "baseline_distributions", "uniform").run_id == bad.run_id

    # every current row is unchanged: the distribution, its lineage, the comparison rows
    after = store.distribution("baseline_distributions", "uniform", "tiny")
    assert after.equals(before)
    assert store.distribution_lineage("baseline_distributions", "uniform", "tiny").run_id != bad.run_id
    assert {r.row_id: (r.run_id, r.data) for r in store.current_rows("distribution_comparison", "tiny")} == before_rows

    # the gate refuses downstream in one line; other partitions stay open
    refusals = blocking_check_refusals(instance, graph, "distribution_comparison")
    assert refusals == [
        f"refusing distribution_comparison: its input baseline_distributions[uniform] failed the blocking check "
        f"{CHECK} in run {bad.run_id[:8]}; fix the input and rerun it, or pass --force"]
    assert len(blocking_check_refusals(instance, graph, "finetune_minilm_baseline", "uniform")) == 1
    assert blocking_check_refusals(instance, graph, "finetune_minilm_baseline", "mnli") == []

    # --force builds on the previous (current) version and the rows record it
    forced = _run(defs, "distribution_comparison", instance, resources, tags=FORCED_TAGS)
    assert forced.success
    rows = store.current_rows("distribution_comparison", "tiny")
    assert all(r.data["forced"] is True and r.run_id == forced.run_id for r in rows)
    assert {r.row_id: {k: v for k, v in r.data.items() if k != "forced"} for r in rows} == \
        {k: d for k, (_, d) in before_rows.items()}

    # exports read the one stored copy and stay valid
    monkeypatch.setenv("HLV_DB_URL", db_url)
    for fmt in ("json", "jsonl"):
        out = io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        export_asset("baseline_distributions", "uniform", fmt, None, profile="tiny")
        text = out.getvalue()
        records = _strict_json(text) if fmt == "json" else [_strict_json(line) for line in text.splitlines()]
        assert pd.DataFrame(records).equals(before)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    export_asset("baseline_distributions", "uniform", "csv", None, profile="tiny")
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(parsed) == 341 and all(float(r["p_e"]) == 1 / 3 for r in parsed)

    # fixed and rerun: the check passes and the gate opens
    monkeypatch.undo()
    assert _run(defs, "baseline_distributions", instance, resources, "uniform").success
    assert blocking_check_refusals(instance, graph, "distribution_comparison") == []


def test_a_bad_mjd_keeps_the_previous_mjd_current_and_the_gate_refuses_its_comparison(tiny_graph, monkeypatch,
                                                                                     tmp_path):
    instance, defs = tiny_graph  # the session's instance and store: the test leaves both as it found them
    graph = defs.resolve_asset_graph()
    store = ResultStore(get_engine())
    key = judgment_key("smollm2-135m", "human")
    before = store.distribution_frame("mjd", str(key), "tiny")
    before_scores = [(a.key, a.run_id) for a in store.artifacts("judgment", str(key), "tiny")]
    assert len(before) and "conversion" in before and before_scores  # smollm2 gives softmax only (log-probs)

    real = judgments.mjd_frames

    def nan_frames(records, temperature=20.0):
        frame, refused = real(records, temperature)
        frame.loc[0, "p_n"] = float("nan")
        return frame, refused

    monkeypatch.setattr(judgments, "mjd_frames", nan_frames)
    bad = _run(defs, "mjd", instance, default_resources(), key)
    assert not bad.success and bad.get_asset_materialization_events() == []
    evaluation = next(e for e in bad.get_asset_check_evaluations() if e.check_name == CHECK)
    assert not evaluation.passed and evaluation.metadata["offending_count"].value == 1
    [item] = evaluation.metadata["offending"].value
    assert item["uid"] == before.uid[0] and item["conversion"] == before.conversion[0] and item["p_n"] == "nan"
    assert store.distribution_frame("mjd", str(key), "tiny").equals(before)
    assert [(a.key, a.run_id) for a in store.artifacts("judgment", str(key), "tiny")] == before_scores

    [line] = blocking_check_refusals(instance, graph, "mjd_comparison", key)
    assert line == (f"refusing mjd_comparison[smollm2-135m/human]: its input mjd[smollm2-135m/human] failed the "
                    f"blocking check {CHECK} in run {bad.run_id[:8]}; fix the input and rerun it, or pass --force")
    assert blocking_check_refusals(instance, graph, "mjd_comparison", judgment_key("smollm2-135m", "none")) == []

    with pytest.raises(BlockedByFailedCheck) as blocked:
        gate_tags(instance, graph, "mjd_comparison", key)
    assert str(blocked.value) == line
    assert gate_tags(instance, graph, "mjd_comparison", key, force=True) == FORCED_TAGS
    assert gate_tags(instance, graph, "mjd_comparison", judgment_key("smollm2-135m", "none"), force=True) == {}
    # `hlv run` launches every step through that gate: refused in one line, nothing run; --force runs it
    runs_before = len(instance.get_run_records())
    with pytest.raises(BlockedByFailedCheck) as refused:
        run_steps([Step("mjd_comparison", "smollm2-135m/human")], instance=instance, defs=defs, out=io.StringIO())
    assert str(refused.value) == line and refused.value.exit_code == 1
    assert len(instance.get_run_records()) == runs_before
    [(_, ok, _)] = run_steps([Step("mjd_comparison", "smollm2-135m/human")], instance=instance, defs=defs,
                             out=io.StringIO(), force=True)
    forced_run = instance.get_run_records(limit=1)[0].dagster_run
    assert ok and forced_run.tags["hlv/forced"] == "true"
    forced = _run(defs, "mjd_comparison", instance, default_resources(), key, tags=FORCED_TAGS)
    assert forced.success
    mine = [r for r in store.current_rows("distribution_comparison", "tiny") if r.run_id == forced.run_id]
    assert mine and all(r.data["forced"] is True for r in mine)

    # `hlv audit` credits a row only to a run that committed its values
    report = audit(mine[0].row_id, engine=store.engine, instance=instance, defs=defs, verify=False)
    assert report["written_by"]["credited"] is True and report["written_by"]["forced"] is True
    assert report["chain"][0]["run_id"] == forced.run_id and any("--force" in n for n in report["notes"])
    fake = ResultStore(get_engine(f"sqlite:///{tmp_path / 'fake.db'}"))
    fake.replace_rows("distribution_comparison", [{"row_id": mine[0].row_id, "items_sha256": "", "data": {}}],
                      asset_key="mjd_comparison", partition_key=str(key), profile="tiny",
                      lineage={"run_id": bad.run_id})  # as if the failed run had written it
    report = audit(mine[0].row_id, engine=fake.engine, instance=instance, defs=defs, verify=False)
    assert report["written_by"]["credited"] is False and report["chain"] == []
    assert any(f"in run {bad.run_id}: the row is not credited" in n for n in report["notes"])

    monkeypatch.undo()  # leave the session's store as the other tests expect it: rebuilt, not forced
    assert _run(defs, "mjd", instance, default_resources(), key).success
    assert blocking_check_refusals(instance, graph, "mjd_comparison", key) == []
    assert _run(defs, "mjd_comparison", instance, default_resources(), key).success
    assert store.distribution_frame("mjd", str(key), "tiny").equals(before)
    assert not any("forced" in r.data for r in store.current_rows("distribution_comparison", "tiny"))


def test_every_stored_value_of_the_main_job_exports_as_valid_json_and_csv(tiny_graph, tmp_path):
    from hlv_assets.lib.paths import output_dir

    exports = [("mjd", "smollm2-135m/human", "jsonl"), ("mjd", "human|smollm2-135m", "csv"),
               ("baseline_distributions", "chaosnli", "json"), ("finetune_minilm_baseline", "chaosnli", "chaosnli")]
    base = output_dir() / "assets" / "tiny"
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        exports += [(folder.name, f.stem, fmt) for f in sorted(folder.glob("*.parquet")) if "__" not in f.stem
                    for fmt in ("jsonl", "csv")]
    exports += [(f.stem, None, "json") for f in sorted(base.glob("*.parquet"))]
    assert len(exports) > 12
    for asset, partition, fmt in exports:
        target = tmp_path / f"{asset}-{partition}.{fmt}".replace("/", "_").replace("|", "_")
        export_asset(asset, partition, fmt, str(target), profile="tiny")
        text = target.read_text()
        if fmt == "csv":
            assert len(list(csv.DictReader(io.StringIO(text)))) > 0
        elif fmt == "jsonl":
            assert all(_strict_json(line) for line in text.splitlines())
        else:
            assert _strict_json(text)
    mjd = [_strict_json(line) for line in (tmp_path / "mjd-smollm2-135m_human.jsonl").read_text().splitlines()]
    assert {r["conversion"] for r in mjd} == {"softmax"} and len(mjd) == 4
