"""The `analyses` group on the tiny profile (random tiny judge, few items): replacement curves, human
preference, variability, ternary plots and the paper report, on top of the materialized tiny main job."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from hlv_assets.cli.run import Step, run_steps
from hlv_assets.defs.analyses import common as A
from hlv_assets.defs.analyses import variability as V_assets
from hlv_assets.defs.jobs import EMBEDDED
from hlv_assets.lib.metrics import compare
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.preference import POSTER_SHARES
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import ResultStore
from hlv_assets.store.tables import table_records

STEPS = [Step("replacement_curves", EMBEDDED), Step("preference_selection", EMBEDDED),
         Step("explanation_variability"), Step("ternary_plots"), Step("paper_report")]
SIZES = A.ANALYSIS_SIZES["tiny"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def analyses(tiny_graph):
    """The analysis steps once (skipped when the main job already ran them)."""
    instance, defs = tiny_graph
    if instance.get_latest_materialization_event(dg.AssetKey("paper_report")) is None:
        report = run_steps(STEPS, instance=instance, defs=defs, raise_on_error=True)
        assert all(ok for _, ok, _ in report)
    return instance, defs, ResultStore(get_engine())


def _metadata(instance, asset: str, partition: str | None = None) -> dict:
    """The metadata of the latest materialization of an asset (partition)."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1).records
    return records[0].asset_materialization.metadata


def test_replacement_rows_curves_and_cached_ends(analyses):
    instance, _, store = analyses
    rows = table_records(store, "replacement", "tiny")
    assert {(r["kind"], r["r"]) for r in rows} == {("none", None)} | {(k, r) for k in ("model", "noise")
                                                                         for r in SIZES.replacement_rs}
    assert {r["n"] for r in rows} == {SIZES.replacement_items}
    assert {r["asset_partition"] for r in rows} == {f"replacement_curves[{EMBEDDED}]"}
    assert len({r["id"] for r in rows}) == len(rows)
    by = {(r["kind"], r["r"], r["conversion"]): r for r in rows}
    for conversion in {r["conversion"] for r in rows}:  # r = 0 is the human set for both kinds
        assert by[("model", 0, conversion)]["kl"] == by[("noise", 0, conversion)]["kl"]
    # r = 4 with model explanations is the VariErr-LG set: the same MJD as the stored mjd partition
    hjd = store.distribution("baseline_distributions", "chaosnli", "tiny").set_index("uid")
    mjd = store.distribution("mjd:softmax", f"{A.DEFAULT_MODEL_SET}|{EMBEDDED}", "tiny").head(SIZES.replacement_items)
    expected = compare(hjd.loc[mjd.uid].to_numpy(), mjd[["p_e", "p_n", "p_c"]].to_numpy())
    assert by[("model", 4, "softmax")]["kl"] == pytest.approx(expected["kl"], abs=1e-9)
    meta = _metadata(instance, "replacement_curves", EMBEDDED)
    assert meta["cache_hits"].value > 0 and "data:image/png;base64," in meta["plot"].value
    assert (output_dir() / "reports" / "tiny" / f"replacement_{EMBEDDED}.png").read_bytes()[:8] == PNG
    # the UI's table: the stored rows, typed columns, values rounded to 4 decimals for display
    table = meta["table"]
    assert isinstance(table, dg.TableMetadataValue)
    assert {c.name: c.type for c in table.schema.columns}["kl"] == "float"
    shown = {r.data["id"]: r.data for r in table.records}
    assert set(shown) == {r["id"] for r in rows}
    for r in rows:
        assert shown[r["id"]]["kl"] == round(r["kl"], 4)


def test_analyses_log_their_progress(analyses):
    """Judging loops write a progress line (sets done, sets/s, ETA) and always the final one."""
    instance, _, _ = analyses
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("replacement_curves"), asset_partitions=[EMBEDDED]), limit=1).records
    messages = [e.user_message for e in instance.all_logs(records[0].run_id)]
    total = 1 + 2 * len(SIZES.replacement_rs)  # no explanations, then model and noise at each r
    assert any(m.startswith(f"{EMBEDDED}: explanation sets judged: {total}/{total} sets (100%), ")
               and "done in" in m for m in messages), messages
    # r = 2 prompts are new in this session: the call cache announces and finishes what it sends
    sent = [m for m in messages if m.startswith("label_logits on ")]
    assert any("prompts to send (the others: call cache)" in m for m in sent), messages
    assert any("prompts (100%)" in m and "done in" in m for m in sent), messages


def test_a_generator_without_label_logits_cannot_judge(analyses):
    """The judge analyses are partitioned by judges only; an LLM without label logits that reached one anyway
    fails saying why."""
    instance, _, _ = analyses
    assert "llama3" not in instance.get_dynamic_partitions("judges")

    class Spec:
        capabilities = frozenset({"generate"})

    class Llms:
        def spec(self, slug):
            return Spec()

    context = dg.build_asset_context(partition_key="llama3")
    with pytest.raises(dg.Failure, match="no label logits"):
        A.partition_judge(context, Llms(), "tiny")


def test_preference_shares_and_mjds(analyses):
    _, _, store = analyses
    rows = table_records(store, "preference-selection", "tiny")
    validation = {r["label"]: r for r in rows if r["kind"] == "validation"}
    assert set(validation) == {"e", "n", "c", "all"}
    assert sum(validation[k]["n_rows"] for k in "enc") == validation["all"]["n_rows"] == 1581
    selection = {r["set"]: r for r in rows if r["kind"] == "selection"}
    assert set(selection) == set(A.PREFERENCE_SETS)
    for name, r in selection.items():
        which, method = name.split("-", 1)
        assert r["poster_share"] == POSTER_SHARES[(which, method)] and r["n_slots"] == 400
        assert r["asset_partition"] == "preference_selection[workbook]"
    # our reading of the workbook (PreferenceRule(), fallback human): preferred greedy fills 80.75 % of slots
    assert selection["preferred-greedy"]["filled_share"] == pytest.approx(0.8075)
    assert selection["unpreferred-greedy"]["filled_share"] == pytest.approx(0.355)
    mjd = [r for r in rows if r["kind"] == "mjd"]
    assert {r["set"] for r in mjd} == {"none", "human", *A.PREFERENCE_SETS}
    assert {r["n"] for r in mjd} == {SIZES.preference_items} and {r["judge"] for r in mjd} == {EMBEDDED}


def test_variability_within_between_and_labelled_fake_embedder(analyses):
    _, _, store = analyses
    rows = table_records(store, "variability", "tiny")
    keys = {(r["set"], r["scope"]) for r in rows}
    assert {("human", "within"), (A.DEFAULT_MODEL_SET, "within"), (A.DEFAULT_MODEL_SET, "between")} <= keys
    assert {(s, "within") for s in A.PREFERENCE_SETS} <= keys
    for r in rows:
        assert r["embedder_fake"] is True and "fake" in r["embedder"]  # the tiny profile says so in each row
        assert r["n"] == SIZES.variability_items
        for k in ("lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos", "euc", "avg"):
            assert 0.0 <= r[k] <= 1.0, (r["set"], k)
    human = next(r for r in rows if r["set"] == "human")
    assert human["n_pairs"] == 6 * SIZES.variability_items  # 4 explanations: 6 pairs per item


def test_variability_with_the_real_minilm_embedder(analyses):
    """The demo/paper path: all-MiniLM-L6-v2 and spaCy on two items (human vs the released Llama3 set)."""
    from hlv_assets.lib import variability as V

    items = pd.read_parquet(output_dir() / "assets" / "tiny" / "hlv_items.parquet").head(2)
    model = A.load_explanation_set(A.DEFAULT_MODEL_SET, "tiny").head(2)
    human = [A.pairs(x) for x in items.human_explanations]
    rows = V_assets.variability_rows({A.DEFAULT_MODEL_SET: (model, [A.pairs(x) for x in model.explanations])},
                              (items, human), embed=V.default_embed, embedder="all-MiniLM-L6-v2", fake=False,
                              cfg=V.VariabilityConfig(), profile="tiny")
    by = {(r["data"]["set"], r["data"]["scope"]): r["data"] for r in rows}
    assert set(by) == {("human", "within"), (A.DEFAULT_MODEL_SET, "within"), (A.DEFAULT_MODEL_SET, "between")}
    assert 0.2 < by[("human", "within")]["cos"] < 0.95 and by[("human", "within")]["embedder_fake"] is False


def test_ternary_plot_per_stored_mjd(analyses):
    instance, _, store = analyses
    from hlv_assets.store.report_view import stored_mjd_partitions

    parts = [p for p in stored_mjd_partitions(store, "tiny") if p["conversion"] == "softmax"]
    assert {p["explanations"] for p in parts} == {"none", "human", "llama3.varierr-lg-first"}  # the main job's
    folder = output_dir() / "reports" / "tiny" / "ternary"
    for p in parts:
        assert (folder / f"{p['judge']}__{p['explanations']}__softmax.png").read_bytes()[:8] == PNG
    meta = _metadata(instance, "ternary_plots")
    assert meta["plots"].value == len(parts)
    assert meta["preview"].value.count("data:image/png;base64,") == min(len(parts), 6)
    listed = [r.data for r in meta["plot_table"].records]
    assert {r["partition"] for r in listed} == {f"{p['judge']}/{p['explanations']}" for p in parts}
    assert set(meta["paths"].value) == {r["partition"] for r in listed}


def test_paper_report_files_and_metadata(analyses):
    instance, _, store = analyses
    md = (output_dir() / "reports" / "paper_report.md").read_text()
    html = (output_dir() / "reports" / "paper_report.html").read_text()
    assert "| VariErr dist. | 3.604 | 3.604 |" in md and "do not follow from the released data" in md
    assert "](figures/replacement.png)" in md and "](figures/ternary.png)" in md
    replacement_ids = [r["id"] for r in table_records(store, "replacement", "tiny")]
    assert all(i in md for i in replacement_ids)
    assert "n/a: fake embedder" in md and "Stand-in judges: human-preference selection" in md
    assert html.count("data:image/png;base64,") == 2
    meta = _metadata(instance, "paper_report")
    assert meta["our_cells"].value > 0 and meta["cells_with_a_reason"].value > 0
    assert "A Rose by Any Other Name" in meta["report"].value


def test_sizes_and_helpers():
    assert set(A.ANALYSIS_SIZES) == {"tiny", "demo", "paper"}
    paper = A.ANALYSIS_SIZES["paper"]
    assert paper.replacement_items is None and paper.replacement_rs == (0, 1, 2, 3, 4) and paper.orders is None
    assert A.ANALYSIS_SIZES["demo"].replacement_rs == (0, 2, 4) and A.ANALYSIS_SIZES["demo"].embedder == "minilm"
    a, b = V_assets.hash_embed(["a cat", "a cat", "dogs"]), V_assets.hash_embed(["a cat"])
    assert np.array_equal(a[0], a[1]) and np.array_equal(a[0], b[0]) and not np.array_equal(a[0], a[2])
    calls = []
    memo = V_assets.memo(lambda texts: calls.append(list(texts)) or [t.upper() for t in texts])
    assert memo(["x", "y", "x"]) == ["X", "Y", "X"] and memo(["y", "z"]) == ["Y", "Z"]
    assert calls == [["x", "y"], ["z"]]
