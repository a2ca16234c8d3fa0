"""`explanation_variability`: lexical / syntactic / semantic similarity within and between explanation sets
(table `variability`, SPEC §6).
(No `from __future__ import annotations`: Dagster reads the config annotations at definition time.)"""

import hashlib
import re

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from hlv_assets.defs.analyses.common import (
    ANALYSES_VERSION,
    PREFERENCE_SETS,
    RELEASED_GENERATORS,
    analysis_sizes,
    load_explanation_set,
    ordered_items,
    pairs,
    stored_explanation_sets,
)
from hlv_assets.defs.analyses.preference import preference_selections, validated_workbook
from hlv_assets.defs.lineage import lineage, stored_rows_table, versioned
from hlv_assets.defs.resources import DataSourceResource, HLVSettings, ResultStoreResource
from hlv_assets.lib import variability as V
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.explanation_sets import split_source
from hlv_assets.lib.preference import PreferenceRule
from hlv_assets.lib.progress import Progress
from hlv_assets.store.results import make_row_id

TABLE_COLUMNS = ["id", "set", "scope", "n", "lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos", "euc", "avg"]


class VariabilityAssetConfig(dg.Config):
    """Our reading of explanation variability (SPEC §6, `hlv_assets/lib/variability/`)."""

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


def memo(fn):
    """Per-text memo of a batch function (texts -> one result per text): each text is embedded / tagged once."""
    cache: dict[str, object] = {}

    def run(texts):
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            cache.update(zip(todo, fn(todo), strict=True))
        return [cache[t] for t in texts]

    return run


def variability_rows(named_sets: dict[str, tuple[pd.DataFrame, list]], human: tuple[pd.DataFrame, list], *,
                     embed, embedder: str, fake: bool, cfg, profile: str, progress=None) -> list[dict]:
    """Rows of `variability`: within human, and within / between (vs human on the same items) each set.
    `progress`: where a line (sets done, sets/s, ETA) goes every few seconds."""
    tagger = memo(lambda texts: V.pos_tag(texts, cfg.pos_attr))
    params = {"embedder": embedder, "embedder_fake": fake, "lexical_measure": cfg.lexical_measure,
              "tokenizer": cfg.tokenizer, "pos_attr": cfg.pos_attr, "pair_scope": cfg.pair_scope,
              "aggregate": cfg.aggregate}
    human_items, human_sets = human
    human_by_uid = dict(zip(human_items.uid, human_sets, strict=True))
    bar = Progress(1 + len(named_sets), progress, what="variability", unit="sets") if progress else None
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
    if bar:
        bar.advance()
    for name, (frame, sets) in named_sets.items():
        uids = list(frame.uid)
        if name in PREFERENCE_SETS and set(uids) != set(human_items.uid):  # the human row on the same items
            if not any(r["data"]["set"] == "human" and r["items_sha256"] == items_sha256(uids) for r in rows):
                add("human", "within", uids, V.within_set_variability([human_by_uid[u] for u in uids],
                                                                      items=uids, **kw))
        add(name, "within", uids, V.within_set_variability(sets, items=uids, **kw))
        if name not in PREFERENCE_SETS:  # a preference set is mostly human already: no between row
            add(name, "between", uids, V.between_sets_variability([human_by_uid[u] for u in uids], sets,
                                                                  items=uids, **kw))
        if bar:
            bar.advance()
    return rows


def _named_sets(config: VariabilityAssetConfig, profile: str, items: pd.DataFrame, chosen: pd.DataFrame,
                data: DataSourceResource) -> tuple[dict[str, tuple[pd.DataFrame, list]], str]:
    """The compared sets on the chosen items ({name: (items frame, explanations)}) and the workbook sha256."""
    sources = list(config.sources) or [s for s in stored_explanation_sets(profile) if s not in ("none", "human")
                                       and split_source(s)[0] in RELEASED_GENERATORS]
    named: dict[str, tuple[pd.DataFrame, list]] = {}
    for source in sources:
        frame = load_explanation_set(source, profile)
        frame = frame[frame.uid.isin(set(chosen.uid))].set_index("uid").loc[
            [u for u in chosen.uid if u in set(frame.uid)]].reset_index()
        if len(frame):
            named[source] = (frame, [pairs(x) for x in frame.explanations])
    xlsx_sha = ""
    if config.preference_sets:
        rows, xlsx_sha = validated_workbook(data)
        all_human = [pairs(x) for x in items.human_explanations]
        selections = preference_selections(rows, all_human, PreferenceRule(), "human")
        for name, sel in selections.items():
            keep = [k for k, item in enumerate(sel.items) if item in set(chosen.item_index)]
            frame = items.iloc[[sel.items[k] for k in keep]]
            named[name] = (frame, [list(sel.explanations[k]) for k in keep])
    return named, xlsx_sha


def _embedder(config: VariabilityAssetConfig, profile: str):
    """(embed function, label, fake?) of the configured embedder."""
    embedder = config.embedder if config.embedder != "auto" else analysis_sizes(profile).embedder
    if embedder == "hash":
        embed, label, fake = memo(hash_embed), "hash-bow-64 (fake: not MiniLM)", True
    elif embedder == "minilm":
        embed, label, fake = memo(lambda texts: list(V.default_embed(texts))), "all-MiniLM-L6-v2", False
    else:
        raise dg.Failure(f"embedder {embedder!r}: expected minilm, hash or auto")
    return (lambda texts: np.asarray(embed(texts))), label, fake


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
    and within the four human-preference selections (the poster's variability table). Table `variability`,
    shown on the asset page."""
    profile = settings.profile
    items = ordered_items(hlv_items)
    n = config.n_items or analysis_sizes(profile).variability_items
    chosen = items.head(n) if n else items
    human_sets = [pairs(x) for x in chosen.human_explanations]
    named, xlsx_sha = _named_sets(config, profile, items, chosen, data)
    embed, label, fake = _embedder(config, profile)
    cfg = V.VariabilityConfig(lexical_measure=config.lexical_measure, tokenizer=config.tokenizer,
                              pos_attr=config.pos_attr, pair_scope=config.pair_scope, aggregate=config.aggregate)
    out = variability_rows(named, (chosen, human_sets), embed=embed, embedder=label, fake=fake, cfg=cfg,
                           profile=profile, progress=context.log.info)
    inputs = {"items": items_sha256(chosen.uid), "workbook": xlsx_sha, "sources": ",".join(sorted(named))}
    results.store().replace_rows("variability", out, asset_key="explanation_variability", partition_key="",
                                 profile=profile, lineage=lineage(context, hashlib.sha256(
                                     repr(sorted(inputs.items())).encode()).hexdigest()))
    return dg.MaterializeResult(metadata={
        "rows": len(out), "n": len(chosen), "embedder": label, "sets": dg.MetadataValue.json(sorted(named)),
        "table": stored_rows_table(out, TABLE_COLUMNS),
    })
