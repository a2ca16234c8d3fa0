"""`preference_selection[<judge>]`: the human validation of Llama3's explanations; human slots refilled with
preferred / unpreferred model explanations (greedy, representative) and the judge's MJDs on them against the
HJD (table `preference_selection`, SPEC §6).
(No `from __future__ import annotations`: Dagster reads the config annotations at definition time.)"""

import dagster as dg
import pandas as pd
from pydantic import Field

from hlv_assets.defs.analyses.common import (
    ANALYSES_VERSION,
    METRIC_COLUMNS,
    PREFERENCE_SETS,
    SetJudge,
    analysis_sizes,
    call_counters,
    comparison_rows,
    judge_options,
    ordered_items,
    pairs,
    partition_judge,
    stored_hjd,
)
from hlv_assets.defs.lineage import lineage, stored_rows_table, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import judge_partitions
from hlv_assets.defs.resources import DataSourceResource, HLVSettings, ResultStoreResource
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.preference import (
    POSTER_SHARES,
    VALIDATED_RELPATH,
    PreferenceRule,
    check_against_items,
    preference_shares,
    read_validated_explanations,
    select_explanations,
)
from hlv_assets.store.results import make_row_id


class PreferenceConfig(dg.Config):
    """Our reading of the human-preference selection (SPEC §6, `hlv_assets/lib/preference/`)."""

    n_items: int | None = Field(default=None, description="MJDs on the first n validated items; None: the "
                                "profile's (paper: all 100)")
    orders: int | None = Field(default=None, description="explanation orders per item; None: the profile's "
                               "analysis setting, 0: all arrangements")
    faithful: bool = Field(default=True, description="preferred needs Q1 faithful = y")
    informative: bool = Field(default=True, description="preferred needs Q2 adds relevant information = y")
    label_consistent: bool = Field(default=True, description="preferred needs Q3 = the label it was written for")
    fallback: str = Field(default="human", description="a slot without a matching model explanation: keep the "
                          "human one (human), take any unused one of its label (any), or drop it (drop)")


def validated_workbook(data: DataSourceResource):
    """(rows of Validated_Llama3_Explanations.xlsx, its sha256)."""
    src = data.source()
    rel = VALIDATED_RELPATH.as_posix()
    return read_validated_explanations(src.path(rel)), src.sha256(rel)


def _share_values(rec: pd.Series) -> dict:
    """A `preference_shares` row as JSON-safe values: counts as ints, shares as floats (NaN as None)."""
    out = {}
    for k, v in rec.items():
        if k.startswith("n_"):
            out[k] = int(v)
        else:
            out[k] = None if pd.isna(v) else float(v)
    return out


def preference_selections(rows, human_sets, rule, fallback: str) -> dict[str, object]:
    """The four selections of the poster ("<which>-<method>") over every validated item."""
    out = {}
    for name in PREFERENCE_SETS:
        which, method = name.split("-", 1)
        out[name] = select_explanations(human_sets, rows, which=which, method=method, rule=rule, fallback=fallback)
    return out


def _workbook_rows(rows, rule, rule_key: dict, selections: dict, human_sets, items: pd.DataFrame,
                   profile: str) -> list[dict]:
    """The judge-free rows: validation shares per label and the share of human slots each selection filled."""
    out = []
    for label, rec in preference_shares(rows, rule).iterrows():
        out.append({"row_id": make_row_id("preference_selection", {"kind": "validation", "label": label,
                                                                   **rule_key}, profile),
                    "items_sha256": "", "data": {"kind": "validation", "label": label, **rule_key,
                                                 **_share_values(rec)}})
    for name, sel in selections.items():
        by_label = sel.share_by_label(human_sets)
        out.append({
            "row_id": make_row_id("preference_selection", {"kind": "selection", "set": name, **rule_key}, profile),
            "items_sha256": items_sha256(items.uid[sel.items]),
            "data": {"kind": "selection", "set": name, "which": sel.which, "method": sel.method, **rule_key,
                     "filled_share": sel.filled_share, "poster_share": POSTER_SHARES[(sel.which, sel.method)],
                     "n_items": len(sel.items), "n_slots": sel.n_slots, "n_filled": sel.n_filled,
                     **{f"share_{k}": v for k, v in by_label.items()}},
        })
    return out


def _mjd_rows(context, llm, slug: str, config: PreferenceConfig, items: pd.DataFrame, hjd: pd.DataFrame,
              selections: dict, human_sets, rule_key: dict, profile: str,
              missing_letters: str) -> tuple[list[dict], pd.DataFrame]:
    """This judge's MJD without explanations, with the human ones and with each selection, against the HJD."""
    sizes = analysis_sizes(profile)
    validated = list(next(iter(selections.values())).items)
    n = config.n_items or sizes.preference_items
    positions = [k for k, item in enumerate(validated) if items.uid[item] in set(hjd.uid)]
    positions = positions[:n] if n else positions
    chosen = items.iloc[[validated[k] for k in positions]]
    options = judge_options(config.orders, sizes, missing_letters)
    sets = {"none": [[] for _ in positions], "human": [human_sets[validated[k]] for k in positions]}
    sets.update({name: [list(sel.explanations[k]) for k in positions] for name, sel in selections.items()})
    params = {**rule_key, "explanation_orders": str(options.orders)}
    judged = SetJudge(context, llm, chosen, options, total=len(sets))
    rows = []
    for name, explanations in sets.items():
        extra = {"kind": "mjd", "set": name, **params}
        if name in selections:
            sel = selections[name]
            filled = [f for k in positions for f in sel.filled[k]]
            extra.update(which=sel.which, method=sel.method, filled_share=sum(filled) / len(filled),
                         filled_share_all=sel.filled_share, poster_share=POSTER_SHARES[(sel.which, sel.method)])
        rows += comparison_rows("preference_selection", hjd, judged.mjd(explanations), profile=profile,
                                judge_slug=slug, key={"kind": "mjd", "set": name, **params}, data=extra)
    return rows, chosen


@dg.asset(
    group_name="analyses", partitions_def=judge_partitions, kinds={"transformers"}, pool="gpu",
    code_version=versioned(ANALYSES_VERSION),
    deps=[dg.AssetDep("baseline_distributions", partition_mapping=dg.SpecificPartitionsPartitionMapping(
        ["chaosnli"]))],
)
def preference_selection(context: dg.AssetExecutionContext, config: PreferenceConfig, hlv_items: pd.DataFrame,
                         settings: HLVSettings, data: DataSourceResource, results: ResultStoreResource,
                         llms: LLMResource) -> dg.MaterializeResult:
    """Can human preference select better explanations? From `Validated_Llama3_Explanations.xlsx` (items 0-99):
    the validation shares per label (faithful, informative, label-consistent, preferred) and, per selection
    (preferred / unpreferred × greedy / representative), the share of the human slots it filled (rows of the
    `workbook` partition, judge-free); then this judge's MJD without explanations, with the human ones and with
    each selection, against the HJD (rows of this judge's partition). One partition per judge; the asset page
    shows both tables."""
    profile = settings.profile
    slug, llm, missing_letters = partition_judge(context, llms, profile)
    store = results.store()
    hjd = stored_hjd(store, profile)
    items = ordered_items(hlv_items)
    rows, xlsx_sha = validated_workbook(data)
    mismatched = check_against_items(rows, items[["premise", "hypothesis"]].to_dict("records"))
    if mismatched:
        raise dg.Failure(f"{len(mismatched)} workbook rows do not match their item's premise/hypothesis: "
                         f"sheet rows {mismatched[:10]}")
    rule = PreferenceRule(config.faithful, config.informative, config.label_consistent)
    rule_key = {"faithful": config.faithful, "informative": config.informative,
                "label_consistent": config.label_consistent, "fallback": config.fallback}
    human_sets = [pairs(x) for x in items.human_explanations]
    selections = preference_selections(rows, human_sets, rule, config.fallback)
    workbook_rows = _workbook_rows(rows, rule, rule_key, selections, human_sets, items, profile)
    store.replace_rows("preference_selection", workbook_rows, asset_key="preference_selection",
                       partition_key="workbook", profile=profile, lineage=lineage(context, xlsx_sha))
    mjd_rows, chosen = _mjd_rows(context, llm, slug, config, items, hjd, selections, human_sets, rule_key, profile,
                                 missing_letters)
    store.replace_rows("preference_selection", mjd_rows, asset_key="preference_selection", partition_key=slug,
                       profile=profile, lineage=lineage(context, xlsx_sha + items_sha256(chosen.uid)))
    return dg.MaterializeResult(metadata={
        "rows": len(mjd_rows), "workbook_rows": len(workbook_rows), "n": len(chosen),
        "workbook_sha256": xlsx_sha, **call_counters(llm),
        "shares": stored_rows_table([r for r in workbook_rows if r["data"]["kind"] == "selection"],
                                    ["id", "set", "filled_share", "poster_share", "n_slots", "n_filled"]),
        "table": stored_rows_table(mjd_rows, ["id", "set", "conversion", "filled_share", *METRIC_COLUMNS]),
    })
