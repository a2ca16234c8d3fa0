"""`replacement_curves[<judge>]`: human explanations replaced by model or noise ones, the judge's MJD per r
against the HJD (table `replacement`) and a curve per judge, shown on the asset page (SPEC §6).
(No `from __future__ import annotations`: Dagster reads the config annotations at definition time.)"""

import hashlib

import dagster as dg
import pandas as pd
from pydantic import Field

from hlv_assets.defs.analyses.common import (
    ANALYSES_VERSION,
    DEFAULT_MODEL_SET,
    METRIC_COLUMNS,
    AnalysisSizes,
    SetJudge,
    analysis_sizes,
    call_counters,
    comparison_rows,
    judge_options,
    load_explanation_set,
    ordered_items,
    pairs,
    partition_judge,
    stored_hjd,
)
from hlv_assets.defs.lineage import frame_sha256, lineage, png_markdown, stored_rows_table, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import judge_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.replacement import replacement_sets
from hlv_assets.lib.report import replacement_figure, reports_dir


class ReplacementConfig(dg.Config):
    """Our reading of the replacement analysis (SPEC §6, `hlv_assets/lib/replacement.py`)."""

    model_set: str = Field(default=DEFAULT_MODEL_SET, description="stored explanation_sets partition whose "
                           "explanation of the same label and slot replaces a human one (r = 4: this set)")
    rs: list[int] | None = Field(default=None, description="r values; None: the profile's (paper 0..4)")
    n_items: int | None = Field(default=None, description="first n items; None: the profile's (paper: all)")
    orders: int | None = Field(default=None, description="explanation orders per item; None: the profile's "
                               "analysis setting, 0: all arrangements")
    kinds: list[str] = Field(default=["model", "noise"], description="model and/or noise replacement")
    seed: int = 0
    order: str = Field(default="random", description="which slots are replaced first: random (seeded per item), "
                       "shared (one permutation), sequential")
    noise_same_label: bool = Field(default=True, description="noise = another item's explanation of the same label")
    noise_keep_slot_label: bool = Field(default=True, description="a noise text keeps the slot's label letter")
    plot_metric: str = "kl"
    plot_conversion: str = "softmax"


def _chosen_items(config: ReplacementConfig, sizes: AnalysisSizes, items: pd.DataFrame, model: pd.DataFrame,
                  hjd: pd.DataFrame) -> pd.DataFrame:
    chosen = items[items.uid.isin(model.index) & items.uid.isin(hjd.uid)]
    n = config.n_items or sizes.replacement_items
    chosen = chosen.head(n) if n else chosen
    if chosen.empty:
        raise dg.Failure(f"explanation_sets[{config.model_set}] shares no item with the HJD")
    return chosen


def _metadata(rows: list[dict], chosen: pd.DataFrame, rs: list[int], llm, png: bytes | None, path,
              slug: str) -> dict:
    metadata = {
        "rows": len(rows), "n": len(chosen), "rs": dg.MetadataValue.json(rs), **call_counters(llm),
        "table": stored_rows_table(rows, ["id", "kind", "r", "conversion", *METRIC_COLUMNS]),
    }
    if png:
        metadata["plot"] = dg.MetadataValue.md(png_markdown(png, f"replacement curves of {slug}"))
        metadata["plot_path"] = dg.MetadataValue.path(str(path))
    return metadata


@dg.asset(
    group_name="analyses", partitions_def=judge_partitions, kinds={"transformers"}, pool="gpu",
    code_version=versioned(ANALYSES_VERSION),
    deps=[dg.AssetDep("explanation_sets", partition_mapping=dg.SpecificPartitionsPartitionMapping(
        ["human", DEFAULT_MODEL_SET])),
          dg.AssetDep("baseline_distributions", partition_mapping=dg.SpecificPartitionsPartitionMapping(
              ["chaosnli"]))],
)
def replacement_curves(context: dg.AssetExecutionContext, config: ReplacementConfig, hlv_items: pd.DataFrame,
                       settings: HLVSettings, results: ResultStoreResource,
                       llms: LLMResource) -> dg.MaterializeResult:
    """Human versus model explanations (poster figures (a), (b)), one partition per judge: for each r, r of
    every item's 4 human explanations are replaced by the model explanation of the same label and slot, or by a
    seeded noise explanation (another item's), and the judge gives an MJD; rows of `replacement` per (kind, r,
    conversion) against the HJD, plus the judge without explanations as reference. The asset page shows the
    rows as a table and the curve (PNG under `data/reports/<profile>/`)."""
    profile = settings.profile
    sizes = analysis_sizes(profile)
    slug, llm, missing_letters = partition_judge(context, llms, profile)
    store = results.store()
    hjd = stored_hjd(store, profile)
    items = ordered_items(hlv_items)
    model = load_explanation_set(config.model_set, profile).set_index("uid")
    chosen = _chosen_items(config, sizes, items, model, hjd)
    rs = list(config.rs if config.rs is not None else sizes.replacement_rs)
    sets = replacement_sets(
        [pairs(x) for x in chosen.human_explanations], [pairs(model.loc[u, "explanations"]) for u in chosen.uid],
        rs=rs, kinds=config.kinds, seed=config.seed, order=config.order, noise_same_label=config.noise_same_label,
        noise_keep_slot_label=config.noise_keep_slot_label,
        noise_pool=[pairs(x) for x in items.human_explanations], items=list(chosen.item_index))
    options = judge_options(config.orders, sizes, missing_letters)
    params = {"model_set": config.model_set, "seed": config.seed, "order": config.order,
              "noise_same_label": config.noise_same_label, "noise_keep_slot_label": config.noise_keep_slot_label,
              "explanation_orders": str(options.orders)}
    judged = SetJudge(context, llm, chosen, options, total=1 + len(sets.sets))
    rows = comparison_rows("replacement", hjd, judged.mjd([[] for _ in range(len(chosen))]), profile=profile,
                           judge_slug=slug, key={"kind": "none", **params},
                           data={"kind": "none", "r": None, **params})
    for (kind, r), explanations in sorted(sets.sets.items()):
        rows += comparison_rows("replacement", hjd, judged.mjd(explanations), profile=profile, judge_slug=slug,
                                key={"kind": kind, "r": r, **params}, data={"kind": kind, "r": r, **params})
    inputs = items_sha256(chosen.uid) + frame_sha256(model.loc[list(chosen.uid)].reset_index())
    store.replace_rows("replacement", rows, asset_key="replacement_curves", partition_key=slug, profile=profile,
                       lineage=lineage(context, hashlib.sha256(inputs.encode()).hexdigest()))
    path = reports_dir() / profile / f"replacement_{slug}.png"
    png = replacement_figure([{"id": r["row_id"], **r["data"]} for r in rows], slug,
                             conversion=config.plot_conversion, metric=config.plot_metric, path=path)
    return dg.MaterializeResult(metadata=_metadata(rows, chosen, rs, llm, png, path, slug))
