"""What the analyses share: sizes per profile, the judge of a partition, stored inputs, judging explanation
sets with progress lines, and comparison rows against the HJD."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from hlv_assets.defs.partitions import display_partition
from hlv_assets.lib.comparison import comparison_row
from hlv_assets.lib.mjd_run import JudgeOptions, judge, mjd_frames
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.progress import Progress
from hlv_assets.store.export import asset_path
from hlv_assets.store.results import make_row_id

ANALYSES_VERSION = "analyses-v1"
DEFAULT_MODEL_SET = "llama3.varierr-lg-first"
PREFERENCE_SETS = ("preferred-greedy", "preferred-representative", "unpreferred-greedy", "unpreferred-representative")
#: The released generators whose stored explanation sets `explanation_variability` reads by default.
RELEASED_GENERATORS = ("llama3", "gpt4o", "mixtral")
#: Result columns the judge analyses show in their table metadata.
METRIC_COLUMNS = ["n", "kl", "jsd", "tvd", "dcor"]


@dataclass(frozen=True)
class AnalysisSizes:
    """How much of each analysis a profile runs (None = everything)."""

    replacement_items: int | None
    replacement_rs: tuple[int, ...]
    preference_items: int | None  # of the 100 validated items
    variability_items: int | None
    orders: int | None  # explanation orders judged per item (None = all arrangements, as published)
    embedder: str  # "minilm" (real) | "hash" (fake, labelled in every row)


ANALYSIS_SIZES: dict[str, AnalysisSizes] = {
    "tiny": AnalysisSizes(2, (0, 2, 4), 2, 4, 1, "hash"),
    "demo": AnalysisSizes(3, (0, 2, 4), 3, 20, 1, "minilm"),
    "paper": AnalysisSizes(None, (0, 1, 2, 3, 4), None, None, None, "minilm"),
}


def analysis_sizes(profile: str) -> AnalysisSizes:
    return ANALYSIS_SIZES.get(profile, ANALYSIS_SIZES["paper"])


def pairs(explanations) -> list[tuple[str, str]]:
    """[text, letter] pairs as stored (lists or numpy arrays after Parquet) -> tuples."""
    return [(str(e[0]), str(e[1])) for e in explanations]


def ordered_items(hlv_items: pd.DataFrame) -> pd.DataFrame:
    items = hlv_items.sort_values("item_index").reset_index(drop=True)
    if list(items.item_index) != list(range(len(items))):
        raise dg.Failure("hlv_items: item_index must run 0..N-1 (it is the line of NLI_explanations.json)")
    return items


def set_frame(items: pd.DataFrame, explanations: list[list[tuple[str, str]]]) -> pd.DataFrame:
    """An explanation set (the judge's input) of `items` with the given explanations per item."""
    frame = items[["uid", "premise", "hypothesis"]].reset_index(drop=True).copy()
    frame["explanations"] = [[list(p) for p in ex] for ex in explanations]
    return frame


def stored_hjd(store, profile: str) -> pd.DataFrame:
    hjd = store.distribution("baseline_distributions", "chaosnli", profile)
    if hjd.empty:
        raise dg.Failure(f"no stored HJD (profile {profile}): materialize baseline_distributions[chaosnli] first")
    return hjd


def partition_judge(context: dg.AssetExecutionContext, llms, profile: str):
    """(slug, cached LLM logging its progress, its missing-letters rule) of the judge this partition names; a
    partition of an LLM without label logits fails saying so."""
    slug = context.partition_key
    spec = llms.spec(slug)
    if "label_logits" not in spec.capabilities:
        raise dg.Failure(f"{slug} exposes no label logits (capabilities {sorted(spec.capabilities)}): it can "
                         "explain but not judge, so it has no replacement or preference analysis")
    return slug, llms.cached(slug, profile, progress=context.log.info), spec.missing_letters()


def judge_options(orders: int | None, sizes: AnalysisSizes, missing_letters: str = "refuse") -> JudgeOptions:
    """The analysis's judging options: its explanation orders and the judge's rule for missing letters."""
    k = sizes.orders if orders is None else orders
    return JudgeOptions(orders="all" if not k else int(k), missing_letters=missing_letters)


class SetJudge:
    """Judges explanation sets of the same items with one judge: each distinct set once (r = 0 is the human
    set for both replacement kinds), and a progress line (sets done, sets/s, ETA) every few seconds."""

    def __init__(self, context: dg.AssetExecutionContext, llm, items: pd.DataFrame, options: JudgeOptions,
                 total: int) -> None:
        self.llm, self.items, self.options = llm, items, options
        self._judged: dict[str, pd.DataFrame] = {}
        self.progress = Progress(total, context.log.info, unit="sets",
                                 what=f"{display_partition(context.partition_key)}: explanation sets judged")

    def mjd(self, explanations) -> pd.DataFrame:
        """The MJD (every conversion) of these explanations of the items."""
        sig = repr(explanations)
        if sig not in self._judged:
            records = judge(self.llm, set_frame(self.items, explanations), self.options)[1]
            self._judged[sig] = mjd_frames(records, self.options.temperature)[0]
        self.progress.advance()
        return self._judged[sig]


def load_explanation_set(source: str, profile: str) -> pd.DataFrame:
    """A stored `explanation_sets` partition (the IO manager's Parquet file), read outside Dagster's inputs:
    the analyses pick their sets at run time (config, every stored set)."""
    try:
        return pd.read_parquet(asset_path("explanation_sets", source, profile))
    except SystemExit as exc:  # export's message names the path and what to materialize
        raise dg.Failure(str(exc)) from None


def stored_explanation_sets(profile: str) -> list[str]:
    """The `explanation_sets` partitions stored for the profile (Parquet files of the IO manager)."""
    folder = output_dir() / "assets" / profile / "explanation_sets"
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def comparison_rows(table: str, hjd: pd.DataFrame, mjd: pd.DataFrame, *, profile: str, judge_slug: str,
                    key: dict, data: dict) -> list[dict]:
    """One row per conversion of `mjd`: metrics against the HJD on its items (lib.comparison), the row id of
    `table` from `key` + conversion + items."""
    rows = []
    for conversion, part in mjd.groupby("conversion", sort=True):
        row = comparison_row(hjd, part.reset_index(drop=True), source=table, profile=profile, llm=judge_slug,
                             conversion=str(conversion), extra={"judge": judge_slug, **data})
        row["row_id"] = make_row_id(table, {**key, "judge": judge_slug, "conversion": conversion,
                                            "items": row["items_sha256"]}, profile)
        rows.append(row)
    return rows


def call_counters(llm) -> dict:
    counters = llm.counters.as_dict()
    return {"llm_calls": counters.get("misses", 0), "cache_hits": counters.get("hits", 0)}
