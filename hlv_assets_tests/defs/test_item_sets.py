"""The item-set chain on data no one here prepared: ChaosNLI-SNLI registered with `hlv items add --from chaosnli`,
MNLI-style label-guided explanations from its 5 SNLI labels by the embedded generator, MJDs of the embedded
judge on the tiny profile's first items, and the comparison against the set's HJD (tiny profile: random
tiny models, ephemeral Dagster instance, outputs in a temporary HLV_HOME)."""

import json

import dagster as dg
import numpy as np
import pytest

from hlv_assets.cli import items as cli_items
from hlv_assets.lib import raw
from hlv_assets.lib.metrics import compare
from hlv_assets.store.db import get_engine

SET = "chaosnli-snli"


@pytest.fixture
def instance(home):
    from hlv_assets.defs.partition_sync import sync_partitions

    inst = dg.DagsterInstance.ephemeral()
    sync_partitions(inst)  # the LLM registry into the store and the `generators` / `judges` partitions
    return inst


def _materialize(instance, steps):
    from hlv_assets.cli.run import load_definitions
    from hlv_assets.defs.resources_defs import default_resources

    defs = load_definitions()
    assets, checks = list(defs.assets), list(defs.asset_checks or [])
    for asset, key in steps:
        result = dg.materialize([*assets, *checks], selection=dg.AssetSelection.assets(asset), partition_key=key,
                                instance=instance, resources=default_resources(), raise_on_error=False)
        failures = [e.step_failure_data.error.to_string() for e in result.all_events
                    if e.is_step_failure and e.step_failure_data.error]
        assert result.success, f"{asset}[{key}]: {failures}"
        failed_checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
        assert not failed_checks, f"{asset}[{key}]: {failed_checks}"


def _rows(item_set):
    from hlv_assets.store.results import ResultStore

    return [r for r in ResultStore(get_engine()).current_rows("distribution_comparison", "tiny")
            if r.data.get("item_set") == item_set]


def test_definitions_hold_the_item_set_family():
    from hlv_assets.cli.run import load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"item_set", "item_set_generations", "item_set_explanations", "item_set_mjd",
            "item_set_comparison"} <= keys
    for name in ("item_set", "item_set_generations", "item_set_explanations", "item_set_mjd", "item_set_comparison"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "item_sets"
        pdef = node.partitions_def
        dims = pdef.partitions_defs if isinstance(pdef, dg.MultiPartitionsDefinition) else [pdef]
        assert len(dims) <= 2
    assert "llm_registry_sensor" in {s.name for s in defs.sensors}


def test_chaosnli_snli_through_hlv_items_add(home, instance, data_dir, capsys):
    from hlv_assets.defs.partition_sync import sync_item_set_partitions
    from hlv_assets.store import item_sets

    src = data_dir / raw.CHAOSNLI_SNLI
    assert cli_items.main(["items", "add", SET, str(src), "--from", "chaosnli", "--no-partitions"]) == 0
    assert "1514 items" in capsys.readouterr().out
    engine = get_engine()
    version = item_sets.current(engine, SET)
    assert version.has_counts and version.has_hjd and not version.has_explanations

    assert sync_item_set_partitions(instance, engine) == [SET, f"none@{SET}"]
    steps = cli_items.chain_steps(version, generator="smollm2-135m", judge="smollm2-135m")
    assert [a for a, _ in steps] == ["item_set", "item_set_generations", *["item_set_explanations"] * 2,
                                     *["item_set_mjd"] * 2, *["item_set_comparison"] * 2]
    _materialize(instance, steps)

    # the generator registered the label-guided sources: k_l = the item's 5 SNLI labels
    sources = set(instance.get_dynamic_partitions("item_set_sources"))
    rules = ("lf-first", "lf-longest", "mnli-lg-first", "mnli-lg-longest")
    assert {f"smollm2-135m.{r}@{SET}" for r in rules} <= sources
    import pandas as pd

    from hlv_assets.lib.paths import output_dir

    lg = pd.read_parquet(output_dir() / "assets" / "tiny" / "item_set_explanations"
                         / f"smollm2-135m.mnli-lg-first@{SET}.parquet")
    items = item_sets.load_items(engine, SET).set_index("uid")
    assert len(lg) == 4  # the tiny profile's generation_items
    for row in lg.itertuples():
        labels = [lab for _, lab in row.explanations]
        assert [labels.count(x) for x in "enc"] == list(items.loc[row.uid, "counts"])

    rows = _rows(SET)
    by = {(r.data["source"], r.data.get("explanations"), r.data["n"]): r.data for r in rows}
    # the whole set: SNLI's 5-annotator distribution against the ChaosNLI HJD, as the raw loader gives it
    snli = raw.load_chaosnli(src)
    counts = np.array(snli.original_counts.tolist(), dtype=float)
    expected = compare(np.array(snli.hjd.tolist()), counts / counts.sum(axis=1, keepdims=True))
    assert by["labels", None, 1514]["kl"] == pytest.approx(expected["kl"])
    assert by["labels", None, 1514]["dcor"] == pytest.approx(expected["dcor"])
    # the MJDs on the profile's 4 items, with the baselines recomputed on the same 4
    mjd = [d for (s, _, n), d in by.items() if s == "mjd"]
    assert {d["explanations"] for d in mjd} == {f"none@{SET}", f"smollm2-135m.mnli-lg-first@{SET}"}
    assert all(d["n"] == 4 and d["llm"] == "smollm2-135m" and np.isfinite([d["kl"], d["jsd"], d["tvd"]]).all()
               for d in mjd)
    assert ("labels", None, 4) in by and ("uniform", None, 4) in by
    assert all(d["items_sha256"] == mjd[0]["items_sha256"] for (s, _, n), d in by.items() if n == 4)


def test_a_set_of_ones_own_explanations_without_hjd(home, instance, tmp_path, capsys):
    from hlv_assets.definitions import defs
    from hlv_assets.defs.automation import REGISTRY_SENSOR
    from hlv_assets.store import item_sets

    path = tmp_path / "own.csv"
    rows = [("P one.", "H one.", [["Because one.", "e"], ["Or not.", "c"]]),
            ("P two.", "H two.", [["Two is two.", "n"]])]
    path.write_text("premise,hypothesis,explanations\n" + "".join(
        f'{p},{h},"{json.dumps(ex).replace(chr(34), chr(34) * 2)}"\n' for p, h, ex in rows), encoding="utf-8")
    assert cli_items.main(["items", "add", "own", str(path), "--no-partitions"]) == 0
    capsys.readouterr()
    # the registry sensor turns the registered set into partitions, without a code reload
    loaded = defs()
    result = loaded.get_sensor_def(REGISTRY_SENSOR)(
        dg.build_sensor_context(instance=instance, repository_def=loaded.get_repository_def()))
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    assert "own" in instance.get_dynamic_partitions("item_sets")
    assert {"none@own", "human@own"} <= set(instance.get_dynamic_partitions("item_set_sources"))
    version = item_sets.current(get_engine(), "own")
    steps = cli_items.chain_steps(version, sources=["human"])
    assert [a for a, _ in steps] == ["item_set", "item_set_explanations", "item_set_mjd", "item_set_comparison"]
    _materialize(instance, steps)
    assert _rows("own") == []  # no HJD: nothing to compare, and the asset says so instead of failing
