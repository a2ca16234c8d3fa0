"""One implementation of an MJD's rows in `distribution_comparison`, shared by `mjd_comparison` (the 341) and
`item_set_comparison` (a user's set): one row per conversion against the HJD on the MJD's items, and the
baselines recomputed on exactly those items."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pandas as pd

from hlv_assets.defs.lineage import lineage
from hlv_assets.lib.comparison import baseline_rows, comparison_row
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.missing_letters import DEFAULT_MISSING_LETTERS
from hlv_assets.store.results import ResultStore

TABLE = "distribution_comparison"


def mjd_rows(hjd: pd.DataFrame, mjd: pd.DataFrame, *, profile: str, judge: str, explanations: str,
             item_set: str, missing_letters: str | None) -> tuple[list[dict], list[str]]:
    """One comparison row per conversion of an MJD frame (`uid, conversion, p_e, p_n, p_c`), in conversion
    order (normalize, softmax), and the MJD's uids; each row records the judge's `missing_letters` rule."""
    rows, uids = [], []
    for conversion, dist in mjd.groupby("conversion", sort=True):
        dist = dist.drop(columns="conversion").reset_index(drop=True)
        uids = list(dist.uid)
        rows.append(comparison_row(hjd, dist, source="mjd", profile=profile, llm=judge, explanations=explanations,
                                   conversion=conversion, item_set=item_set,
                                   extra={"missing_letters": missing_letters}))
    return rows, uids


def judged_missing_letters(store: ResultStore, partition_key: str, profile: str) -> str | None:
    """The `missing_letters` rule the stored judgment records of an MJD partition were converted with (records
    from before the rule existed: `refuse`, the only behaviour then); None when no record is stored."""
    first = store.artifacts("judgment", partition_key, profile, limit=1)
    return first[0].data.get("missing_letters", DEFAULT_MISSING_LETTERS) if first else None


def store_mjd_comparison(context: dg.AssetExecutionContext, store: ResultStore, *, hjd: pd.DataFrame,
                         mjd: pd.DataFrame, profile: str, judge: str, explanations: str, item_set: str,
                         subset_baselines: Callable[[list[str]], dict[str, pd.DataFrame] | None],
                         subset_prefix: str = "") -> tuple[list[dict], list[str]]:
    """Store an MJD's comparison rows under the asset partition, and the baselines on its items (from
    `subset_baselines(uids)`; None: none needed) under `<subset_prefix>items=<sha16>`: one set of baseline rows
    per distinct item subset, shared by every MJD on it. Returns (all rows written, the MJD's uids)."""
    if mjd.empty:
        raise dg.Failure(f"no MJD for {judge}/{explanations}: materialize its judgment asset first")
    rule = judged_missing_letters(store, context.partition_key, profile)
    rows, uids = mjd_rows(hjd, mjd, profile=profile, judge=judge, explanations=explanations, item_set=item_set,
                          missing_letters=rule)
    lin = lineage(context, items_sha256(uids))
    asset = context.asset_key.to_user_string()
    store.replace_rows(TABLE, rows, asset_key=asset, partition_key=context.partition_key, profile=profile,
                       lineage=lin)
    baselines = subset_baselines(uids)
    if baselines is not None:
        subset = baseline_rows(hjd, baselines, profile=profile, uids=uids, item_set=item_set)
        store.replace_rows(TABLE, subset, asset_key=asset, partition_key=f"{subset_prefix}items={items_sha256(uids)[:16]}",
                           profile=profile, lineage=lin)
        rows = rows + subset
    return rows, uids
