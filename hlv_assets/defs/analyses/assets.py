"""Group `analyses`: the paper's §2 analyses (SPEC §6), ternary plots and the side-by-side paper report.

- `replacement_curves[<judge>]`: r of the 4 human explanations replaced by model or noise explanations; the
  judge's MJD per r against the HJD (table `replacement`) and a curve per judge.
- `preference_selection[<judge>]`: the human validation of Llama3's explanations; slots refilled with preferred
  / unpreferred model explanations (greedy, representative); the judge's MJDs on them (table
  `preference_selection`).
- `explanation_variability`: lexical / syntactic / semantic similarity within and between explanation sets
  (table `variability`).
- `ternary_plots`: HJD and MJD of every stored MJD partition on the simplex.
- `paper_report`: every poster table with the paper's values and ours (`data/reports/paper_report.{md,html}`).

The two judge analyses are partitioned by `llm` = the judge: a new judge is a new partition and every row names
its judge partition; an `llm` partition that cannot judge (a replay of published text has no label logits)
fails saying so. None of these assets is eager: they call judges (which may cost money) and run from the main
job, the UI or `hlv run`. Each *our reading* rule of SPEC §6 is a field of the asset's config.
Sizes per profile (`ANALYSIS_SIZES`): tiny and demo use a few items and one explanation order per item (the
first order the MJD assets judge too, so the r = 0 and r = 4 prompts come from the call cache); paper uses all.
(No `from __future__ import annotations` here: Dagster reads the config annotations at definition time.)
"""

import base64
import hashlib
import re
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from hlv_assets.defs.lineage import frame_sha256, lineage, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import llm_partitions
from hlv_assets.defs.resources import DataSourceResource, HLVSettings, ResultStoreResource
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.mjd_run import JudgeOptions, judge, mjd_frames
from hlv_assets.store.results import make_row_id

ANALYSES_VERSION = "analyses-v1"
DEFAULT_MODEL_SET = "llama3.varierr-lg-first"
PREFERENCE_SETS = ("preferred-greedy", "preferred-representative", "unpreferred-greedy", "unpreferred-representative")
#: The released generators whose stored explanation sets `explanation_variability` reads by default.
RELEASED_GENERATORS = ("llama3", "gpt4o", "mixtral")


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


# ------------------------------------------------------------------------------------------------ helpers


def _png_md(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def _pairs(explanations) -> list[tuple[str, str]]:
    """[text, letter] pairs as stored (lists or numpy arrays after Parquet) -> tuples."""
    return [(str(e[0]), str(e[1])) for e in explanations]


def _items(hlv_items: pd.DataFrame) -> pd.DataFrame:
    items = hlv_items.sort_values("item_index").reset_index(drop=True)
    if list(items.item_index) != list(range(len(items))):
        raise dg.Failure("hlv_items: item_index must run 0..N-1 (it is the line of NLI_explanations.json)")
    return items


def _set_frame(items: pd.DataFrame, explanations: list[list[tuple[str, str]]]) -> pd.DataFrame:
    frame = items[["uid", "premise", "hypothesis"]].reset_index(drop=True).copy()
    frame["explanations"] = [[list(p) for p in ex] for ex in explanations]
    return frame


def _hjd(store, profile: str) -> pd.DataFrame:
    hjd = store.distribution("baseline_distributions", "chaosnli", profile)
    if hjd.empty:
        raise dg.Failure(f"no stored HJD (profile {profile}): materialize baseline_distributions[chaosnli] first")
    return hjd


def _judge(context, llms: LLMResource, profile: str):
    slug = context.partition_key
    spec = llms.spec(slug)
    if "label_logits" not in spec.capabilities:
        raise dg.Failure(f"{slug} exposes no label logits (capabilities {sorted(spec.capabilities)}): it can "
                         "explain but not judge, so it has no replacement or preference analysis")
    return slug, llms.cached(slug, profile)


def _options(orders: int | None, sizes: AnalysisSizes) -> JudgeOptions:
    k = sizes.orders if orders is None else orders
    return JudgeOptions(orders="all" if not k else int(k))


def load_explanation_set(source: str, profile: str) -> pd.DataFrame:
    """A stored `explanation_sets` partition (the IO manager's Parquet file)."""
    from hlv_assets.export import asset_path

    try:
        return pd.read_parquet(asset_path("explanation_sets", source, profile))
    except SystemExit as exc:  # export's message names the path and what to materialize
        raise dg.Failure(str(exc)) from None


def stored_explanation_sets(profile: str) -> list[str]:
    """The `explanation_sets` partitions stored for the profile (Parquet files of the IO manager)."""
    from hlv_assets.lib.paths import output_dir

    folder = output_dir() / "assets" / profile / "explanation_sets"
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def comparison_rows(table: str, hjd: pd.DataFrame, mjd: pd.DataFrame, *, profile: str, judge_slug: str,
                    key: dict, data: dict) -> list[dict]:
    """One row per conversion of `mjd`: metrics against the HJD on its items (lib.comparison), the row id of
    `table` from `key` + conversion + items."""
    from hlv_assets.lib.comparison import comparison_row

    rows = []
    for conversion, part in mjd.groupby("conversion", sort=True):
        row = comparison_row(hjd, part.reset_index(drop=True), source=table, profile=profile, llm=judge_slug,
                             conversion=str(conversion), extra={"judge": judge_slug, **data})
        row["row_id"] = make_row_id(table, {**key, "judge": judge_slug, "conversion": conversion,
                                            "items": row["items_sha256"]}, profile)
        rows.append(row)
    return rows


def _table_md(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    frame = pd.DataFrame([{"id": r["row_id"], **r["data"]} for r in rows])
    shown = [c for c in columns if c in frame.columns]
    return dg.MetadataValue.md(frame[shown].to_markdown(index=False, floatfmt=".4f") if len(frame) else "(no rows)")


def _counters(llm) -> dict:
    counters = llm.counters.as_dict()
    return {"llm_calls": counters.get("misses", 0), "cache_hits": counters.get("hits", 0)}


# ------------------------------------------------------------------------------------------------ replacement


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


@dg.asset(
    group_name="analyses", partitions_def=llm_partitions, kinds={"transformers"}, pool="gpu",
    code_version=versioned(ANALYSES_VERSION),
    deps=[dg.AssetDep("explanation_sets", partition_mapping=dg.SpecificPartitionsPartitionMapping(
        ["human", DEFAULT_MODEL_SET])),
          dg.AssetDep("baseline_distributions", partition_mapping=dg.SpecificPartitionsPartitionMapping(
              ["chaosnli"]))],
)
def replacement_curves(context: dg.AssetExecutionContext, config: ReplacementConfig, hlv_items: pd.DataFrame,
                       settings: HLVSettings, results: ResultStoreResource,
                       llms: LLMResource) -> dg.MaterializeResult:
    """Human versus model explanations (poster figures (a), (b)): for each r, r of every item's 4 human
    explanations are replaced by the model explanation of the same label and slot, or by a seeded noise
    explanation (another item's), and the judge of this partition gives an MJD; rows of `replacement` per
    (kind, r, conversion) against the HJD, plus the judge without explanations as reference, and a curve PNG
    under `data/reports/<profile>/`."""
    from hlv_assets.lib.replacement import replacement_sets
    from hlv_assets.lib.report import replacement_figure, reports_dir

    profile = settings.profile
    sizes = analysis_sizes(profile)
    slug, llm = _judge(context, llms, profile)
    store = results.store()
    hjd = _hjd(store, profile)
    items = _items(hlv_items)
    model = load_explanation_set(config.model_set, profile).set_index("uid")
    chosen = items[items.uid.isin(model.index) & items.uid.isin(hjd.uid)]
    n = config.n_items or sizes.replacement_items
    chosen = chosen.head(n) if n else chosen
    if chosen.empty:
        raise dg.Failure(f"explanation_sets[{config.model_set}] shares no item with the HJD")
    rs = list(config.rs if config.rs is not None else sizes.replacement_rs)
    sets = replacement_sets(
        [_pairs(x) for x in chosen.human_explanations], [_pairs(model.loc[u, "explanations"]) for u in chosen.uid],
        rs=rs, kinds=config.kinds, seed=config.seed, order=config.order, noise_same_label=config.noise_same_label,
        noise_keep_slot_label=config.noise_keep_slot_label,
        noise_pool=[_pairs(x) for x in items.human_explanations], items=list(chosen.item_index))
    options = _options(config.orders, sizes)
    params = {"model_set": config.model_set, "seed": config.seed, "order": config.order,
              "noise_same_label": config.noise_same_label, "noise_keep_slot_label": config.noise_keep_slot_label,
              "explanation_orders": str(options.orders)}
    judged: dict[str, pd.DataFrame] = {}

    def mjd_of(explanations) -> pd.DataFrame:
        sig = repr(explanations)
        if sig not in judged:  # r = 0 is the same human set for both kinds: judged once
            judged[sig] = mjd_frames(judge(llm, _set_frame(chosen, explanations), options)[1],
                                     options.temperature)[0]
        return judged[sig]

    rows = comparison_rows("replacement", hjd, mjd_of([[] for _ in range(len(chosen))]), profile=profile,
                           judge_slug=slug, key={"kind": "none", **params},
                           data={"kind": "none", "r": None, **params})
    for (kind, r), explanations in sorted(sets.sets.items()):
        rows += comparison_rows("replacement", hjd, mjd_of(explanations), profile=profile, judge_slug=slug,
                                key={"kind": kind, "r": r, **params}, data={"kind": kind, "r": r, **params})
    inputs = items_sha256(chosen.uid) + frame_sha256(model.loc[list(chosen.uid)].reset_index())
    store.replace_rows("replacement", rows, asset_key="replacement_curves", partition_key=slug, profile=profile,
                       lineage=lineage(context, hashlib.sha256(inputs.encode()).hexdigest()))
    path = reports_dir() / profile / f"replacement_{slug}.png"
    png = replacement_figure([{"id": r["row_id"], **r["data"]} for r in rows], slug,
                             conversion=config.plot_conversion, metric=config.plot_metric, path=path)
    metadata = {
        "rows": len(rows), "n": len(chosen), "rs": dg.MetadataValue.json(rs), **_counters(llm),
        "table": _table_md(rows, ["id", "kind", "r", "conversion", "n", "kl", "jsd", "tvd", "dcor"]),
    }
    if png:
        metadata["plot"] = dg.MetadataValue.md(_png_md(png, f"replacement curves of {slug}"))
        metadata["plot_path"] = dg.MetadataValue.path(str(path))
    return dg.MaterializeResult(metadata=metadata)


# ------------------------------------------------------------------------------------------------ preference


class PreferenceConfig(dg.Config):
    """Our reading of the human-preference selection (SPEC §6, `hlv_assets/lib/preference.py`)."""

    n_items: int | None = Field(default=None, description="MJDs on the first n validated items; None: the "
                                "profile's (paper: all 100)")
    orders: int | None = Field(default=None, description="explanation orders per item; None: the profile's "
                               "analysis setting, 0: all arrangements")
    faithful: bool = Field(default=True, description="preferred needs Q1 faithful = y")
    informative: bool = Field(default=True, description="preferred needs Q2 adds relevant information = y")
    label_consistent: bool = Field(default=True, description="preferred needs Q3 = the label it was written for")
    fallback: str = Field(default="human", description="a slot without a matching model explanation: keep the "
                          "human one (human), take any unused one of its label (any), or drop it (drop)")


def _validated(data: DataSourceResource):
    from hlv_assets.lib.preference import VALIDATED_RELPATH, read_validated_explanations

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
    from hlv_assets.lib.preference import select_explanations

    out = {}
    for name in PREFERENCE_SETS:
        which, method = name.split("-", 1)
        out[name] = select_explanations(human_sets, rows, which=which, method=method, rule=rule, fallback=fallback)
    return out


@dg.asset(
    group_name="analyses", partitions_def=llm_partitions, kinds={"transformers"}, pool="gpu",
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
    each selection, against the HJD (rows of this judge's partition)."""
    from hlv_assets.lib.preference import (
        POSTER_SHARES,
        PreferenceRule,
        check_against_items,
        preference_shares,
    )

    profile = settings.profile
    sizes = analysis_sizes(profile)
    slug, llm = _judge(context, llms, profile)
    store = results.store()
    hjd = _hjd(store, profile)
    items = _items(hlv_items)
    rows, xlsx_sha = _validated(data)
    mismatched = check_against_items(rows, items[["premise", "hypothesis"]].to_dict("records"))
    if mismatched:
        raise dg.Failure(f"{len(mismatched)} workbook rows do not match their item's premise/hypothesis: "
                         f"sheet rows {mismatched[:10]}")
    rule = PreferenceRule(config.faithful, config.informative, config.label_consistent)
    rule_key = {"faithful": config.faithful, "informative": config.informative,
                "label_consistent": config.label_consistent, "fallback": config.fallback}
    human_sets = [_pairs(x) for x in items.human_explanations]
    selections = preference_selections(rows, human_sets, rule, config.fallback)
    workbook_rows = []
    for label, rec in preference_shares(rows, rule).iterrows():
        workbook_rows.append({"row_id": make_row_id("preference_selection", {"kind": "validation", "label": label,
                                                                            **rule_key}, profile),
                              "items_sha256": "", "data": {"kind": "validation", "label": label, **rule_key,
                                                           **_share_values(rec)}})
    for name, sel in selections.items():
        by_label = sel.share_by_label(human_sets)
        workbook_rows.append({
            "row_id": make_row_id("preference_selection", {"kind": "selection", "set": name, **rule_key}, profile),
            "items_sha256": items_sha256(items.uid[sel.items]),
            "data": {"kind": "selection", "set": name, "which": sel.which, "method": sel.method, **rule_key,
                     "filled_share": sel.filled_share, "poster_share": POSTER_SHARES[(sel.which, sel.method)],
                     "n_items": len(sel.items), "n_slots": sel.n_slots, "n_filled": sel.n_filled,
                     **{f"share_{k}": v for k, v in by_label.items()}},
        })
    lin = lineage(context, xlsx_sha)
    store.replace_rows("preference_selection", workbook_rows, asset_key="preference_selection",
                       partition_key="workbook", profile=profile, lineage=lin)

    validated = list(next(iter(selections.values())).items)
    n = config.n_items or sizes.preference_items
    positions = [k for k, item in enumerate(validated) if items.uid[item] in set(hjd.uid)]
    positions = positions[:n] if n else positions
    chosen = items.iloc[[validated[k] for k in positions]]
    options = _options(config.orders, sizes)
    sets = {"none": [[] for _ in positions], "human": [human_sets[validated[k]] for k in positions]}
    sets.update({name: [list(sel.explanations[k]) for k in positions] for name, sel in selections.items()})
    params = {**rule_key, "explanation_orders": str(options.orders)}
    mjd_rows = []
    for name, explanations in sets.items():
        mjd = mjd_frames(judge(llm, _set_frame(chosen, explanations), options)[1], options.temperature)[0]
        extra = {"kind": "mjd", "set": name, **params}
        if name in selections:
            sel = selections[name]
            filled = [f for k in positions for f in sel.filled[k]]
            extra.update(which=sel.which, method=sel.method, filled_share=sum(filled) / len(filled),
                         filled_share_all=sel.filled_share, poster_share=POSTER_SHARES[(sel.which, sel.method)])
        mjd_rows += comparison_rows("preference_selection", hjd, mjd, profile=profile, judge_slug=slug,
                                    key={"kind": "mjd", "set": name, **params}, data=extra)
    store.replace_rows("preference_selection", mjd_rows, asset_key="preference_selection", partition_key=slug,
                       profile=profile, lineage=lineage(context, xlsx_sha + items_sha256(chosen.uid)))
    return dg.MaterializeResult(metadata={
        "rows": len(mjd_rows), "workbook_rows": len(workbook_rows), "n": len(chosen),
        "workbook_sha256": xlsx_sha, **_counters(llm),
        "shares": _table_md([r for r in workbook_rows if r["data"]["kind"] == "selection"],
                            ["id", "set", "filled_share", "poster_share", "n_slots", "n_filled"]),
        "table": _table_md(mjd_rows, ["id", "set", "conversion", "n", "filled_share", "kl", "jsd", "tvd", "dcor"]),
    })


# ------------------------------------------------------------------------------------------------ variability


class VariabilityAssetConfig(dg.Config):
    """Our reading of explanation variability (SPEC §6, `hlv_assets/lib/variability.py`)."""

    n_items: int | None = Field(default=None, description="first n items; None: the profile's (paper: all)")
    embedder: str = Field(default="auto", description="minilm (all-MiniLM-L6-v2), hash (a fake bag-of-words "
                          "embedder, labelled so in every row) or auto (hash in the tiny profile, else minilm)")
    sources: list[str] = Field(default=[], description="explanation_sets partitions; empty: every stored set of "
                               "a released generator (llama3, gpt4o, mixtral)")
    preference_sets: bool = Field(default=True, description="also the four human-preference selections")
    lexical_measure: str = "dice"
    tokenizer: str = "spacy"
    pos_attr: str = "pos"
    pair_scope: str = "item"
    aggregate: str = "item"


def hash_embed(texts: list[str]) -> np.ndarray:
    """A fake sentence embedder (64-dim hashed bag of words) for the tiny profile: fast, deterministic, not
    MiniLM. Rows computed with it say so (`embedder_fake`)."""
    out = np.zeros((len(texts), 64))
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        out[i, 63] += 1e-3
    return out


def _memo(fn):
    """Per-text memo of a batch function (texts -> one result per text): each text is embedded / tagged once."""
    cache: dict[str, object] = {}

    def run(texts):
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            cache.update(zip(todo, fn(todo), strict=True))
        return [cache[t] for t in texts]

    return run


def variability_rows(named_sets: dict[str, tuple[pd.DataFrame, list]], human: tuple[pd.DataFrame, list], *,
                     embed, embedder: str, fake: bool, cfg, profile: str) -> list[dict]:
    """Rows of `variability`: within human, and within / between (vs human on the same items) each set."""
    from hlv_assets.lib import variability as V

    tagger = _memo(lambda texts: V.pos_tag(texts, cfg.pos_attr))
    params = {"embedder": embedder, "embedder_fake": fake, "lexical_measure": cfg.lexical_measure,
              "tokenizer": cfg.tokenizer, "pos_attr": cfg.pos_attr, "pair_scope": cfg.pair_scope,
              "aggregate": cfg.aggregate}
    human_items, human_sets = human
    human_by_uid = dict(zip(human_items.uid, human_sets, strict=True))
    rows = []

    def add(name: str, scope: str, uids, result):
        uids = list(uids)
        data = {"set": name, "scope": scope, "compared_with": "human" if scope == "between" else None,
                "n": len(uids), "n_pairs": result.n_pairs, **result.poster_row(),
                "cos_dist": result.means.get("cos_dist"), "euc_dist": result.means.get("euc_dist"), **params}
        key = {"set": name, "scope": scope, "items": items_sha256(uids), **params}
        rows.append({"row_id": make_row_id("variability", key, profile), "items_sha256": items_sha256(uids),
                     "data": data})

    kw = {"embed": embed, "pos_tagger": tagger, "config": cfg}
    add("human", "within", human_items.uid, V.within_set_variability(human_sets, items=list(human_items.uid), **kw))
    for name, (frame, sets) in named_sets.items():
        uids = list(frame.uid)
        if name in PREFERENCE_SETS and set(uids) != set(human_items.uid):  # the human row on the same items
            key_uids = tuple(uids)
            if not any(r["data"]["set"] == "human" and r["items_sha256"] == items_sha256(key_uids) for r in rows):
                add("human", "within", uids, V.within_set_variability([human_by_uid[u] for u in uids],
                                                                      items=uids, **kw))
        add(name, "within", uids, V.within_set_variability(sets, items=uids, **kw))
        if name not in PREFERENCE_SETS:  # a preference set is mostly human already: no between row
            add(name, "between", uids, V.between_sets_variability([human_by_uid[u] for u in uids], sets,
                                                                  items=uids, **kw))
    return rows


@dg.asset(
    group_name="analyses", kinds={"spacy", "pytorch"}, code_version=versioned(ANALYSES_VERSION),
    deps=["explanation_sets"],
)
def explanation_variability(context: dg.AssetExecutionContext, config: VariabilityAssetConfig,
                            hlv_items: pd.DataFrame, settings: HLVSettings, data: DataSourceResource,
                            results: ResultStoreResource) -> dg.MaterializeResult:
    """Are human and model explanations different? Lexical (word n-gram overlap), syntactic (POS n-gram
    overlap) and semantic (MiniLM cosine / Euclidean) similarity of the explanations of an item: within the
    human ones, within each stored explanation set of a released generator and between it and the human ones,
    and within the four human-preference selections (the poster's variability table). Table `variability`."""
    from hlv_assets.lib import variability as V
    from hlv_assets.lib.explanation_sets import split_source
    from hlv_assets.lib.preference import PreferenceRule

    profile = settings.profile
    sizes = analysis_sizes(profile)
    items = _items(hlv_items)
    n = config.n_items or sizes.variability_items
    chosen = items.head(n) if n else items
    human_sets = [_pairs(x) for x in chosen.human_explanations]
    sources = list(config.sources) or [s for s in stored_explanation_sets(profile) if s not in ("none", "human")
                                       and split_source(s)[0] in RELEASED_GENERATORS]
    named: dict[str, tuple[pd.DataFrame, list]] = {}
    for source in sources:
        frame = load_explanation_set(source, profile)
        frame = frame[frame.uid.isin(set(chosen.uid))].set_index("uid").loc[
            [u for u in chosen.uid if u in set(frame.uid)]].reset_index()
        if len(frame):
            named[source] = (frame, [_pairs(x) for x in frame.explanations])
    xlsx_sha = ""
    if config.preference_sets:
        rows, xlsx_sha = _validated(data)
        all_human = [_pairs(x) for x in items.human_explanations]
        selections = preference_selections(rows, all_human, PreferenceRule(), "human")
        for name, sel in selections.items():
            keep = [k for k, item in enumerate(sel.items) if item in set(chosen.item_index)]
            frame = items.iloc[[sel.items[k] for k in keep]]
            named[name] = (frame, [list(sel.explanations[k]) for k in keep])
    embedder = config.embedder if config.embedder != "auto" else sizes.embedder
    if embedder == "hash":
        embed, label, fake = _memo(hash_embed), "hash-bow-64 (fake: not MiniLM)", True
    elif embedder == "minilm":
        embed, label, fake = _memo(lambda texts: list(V.default_embed(texts))), "all-MiniLM-L6-v2", False
    else:
        raise dg.Failure(f"embedder {embedder!r}: expected minilm, hash or auto")
    cfg = V.VariabilityConfig(lexical_measure=config.lexical_measure, tokenizer=config.tokenizer,
                              pos_attr=config.pos_attr, pair_scope=config.pair_scope, aggregate=config.aggregate)
    out = variability_rows(named, (chosen, human_sets), embed=lambda t: np.asarray(embed(t)), embedder=label,
                           fake=fake, cfg=cfg, profile=profile)
    inputs = {"items": items_sha256(chosen.uid), "workbook": xlsx_sha, "sources": ",".join(sorted(named))}
    results.store().replace_rows("variability", out, asset_key="explanation_variability", partition_key="",
                                 profile=profile, lineage=lineage(context, hashlib.sha256(
                                     repr(sorted(inputs.items())).encode()).hexdigest()))
    return dg.MaterializeResult(metadata={
        "rows": len(out), "n": len(chosen), "embedder": label, "sets": dg.MetadataValue.json(sorted(named)),
        "table": _table_md(out, ["id", "set", "scope", "n", "lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos",
                                 "euc", "avg"]),
    })


# ------------------------------------------------------------------------------------------------ ternary plots


class TernaryConfig(dg.Config):
    conversion: str = Field(default="softmax", description="which stored MJD conversion to plot")
    max_in_metadata: int = Field(default=6, description="plots shown inline in the metadata (all are written)")


@dg.asset(group_name="analyses", kinds={"matplotlib"}, code_version=versioned(ANALYSES_VERSION),
          deps=["mjd", dg.AssetDep("baseline_distributions",
                                   partition_mapping=dg.SpecificPartitionsPartitionMapping(["chaosnli"]))])
def ternary_plots(context: dg.AssetExecutionContext, config: TernaryConfig, settings: HLVSettings,
                  results: ResultStoreResource) -> dg.MaterializeResult:
    """Each stored MJD (judge × explanations) and the HJD of its items on a ternary diagram, one PNG per
    partition under `data/reports/<profile>/ternary/`."""
    from hlv_assets.lib.report import reports_dir, stored_mjd_partitions, ternary_figure

    profile = settings.profile
    store = results.store()
    hjd = _hjd(store, profile)
    parts = [p for p in stored_mjd_partitions(store, profile) if p["conversion"] == config.conversion]
    folder = reports_dir() / profile / "ternary"
    shown, paths = [], {}
    for p in parts:
        mjd = store.distribution(f"mjd:{p['conversion']}", p["partition_key"], profile)
        path = folder / f"{p['judge']}__{p['explanations']}__{p['conversion']}.png"
        title = f"{p['judge']} + {p['explanations']} ({p['conversion']}), n = {len(mjd)}, profile {profile}"
        png = ternary_figure(hjd, mjd, title=title, path=path)
        paths[f"{p['judge']}/{p['explanations']}"] = str(path)
        if len(shown) < config.max_in_metadata:
            shown.append(_png_md(png, title))
    context.log.info(f"{len(paths)} ternary plots under {folder}")
    return dg.MaterializeResult(metadata={
        "plots": len(paths), "paths": dg.MetadataValue.json(paths),
        "preview": dg.MetadataValue.md("\n\n".join(shown) or "(no stored MJD of this conversion)"),
    })


# ------------------------------------------------------------------------------------------------ report


class ReportConfig(dg.Config):
    judges: dict[str, str] = Field(default={}, description="paper judge (Llama3, GPT-4o) -> our slug; default: "
                                   "the registered LLM whose model id matches")
    set_variant: str = Field(default="first", description="selection the paper's '+ model-ex' rows read")
    figure_metric: str = "kl"
    figure_conversion: str = "softmax"


def _report_deps() -> list:
    from hlv_assets.lib.training_plan import ENCODERS

    names = ["distribution_comparison", "mjd_comparison", "replacement_curves", "preference_selection",
             "explanation_variability", "ternary_plots"]
    for encoder in ENCODERS:
        names += [f"finetune_{encoder.name}", f"finetune_{encoder.name}_baseline",
                  f"finetune_{encoder.name}_reference"]
    return names


@dg.asset(group_name="analyses", kinds={"markdown", "html"}, code_version=versioned(ANALYSES_VERSION),
          deps=_report_deps())
def paper_report(context: dg.AssetExecutionContext, config: ReportConfig, settings: HLVSettings,
                 results: ResultStoreResource) -> dg.MaterializeResult:
    """Every table of the poster with the paper's values and ours side by side (difference, row id, asset
    partition; the reason where we cannot compute a cell; n where a row covers a subset), the VariErr / MNLI
    discrepancy, one ternary plot and the replacement curve: `data/reports/paper_report.md` and `.html`
    (`hlv report` writes the same from the store without a run)."""
    from hlv_assets.lib.report import ReportOptions, write_report

    options = ReportOptions(judges=dict(config.judges), set_variant=config.set_variant,
                            figure_metric=config.figure_metric, figure_conversion=config.figure_conversion)
    result = write_report(results.store(), settings.profile, options=options)
    return dg.MaterializeResult(metadata={
        "markdown_path": dg.MetadataValue.path(str(result.markdown_path)),
        "html_path": dg.MetadataValue.path(str(result.html_path)),
        "our_cells": result.our_cells, "cells_with_a_reason": result.missing_cells,
        "subset_rows": result.subset_rows,
        "report": dg.MetadataValue.md(result.markdown_inline),
    })
