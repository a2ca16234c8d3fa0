"""From items to generation calls and back: the generation rows of one LLM and the explanation sets built
from them (SPEC §2). Sources: `none`, `human`, `<generator>.<set>`."""

from __future__ import annotations

import dataclasses
import hashlib

import pandas as pd

from hlv_assets.lib.nli import LETTERS
from hlv_assets.lib.parsing import DEFAULT_OPTIONS, RELEASED_PARSE_OPTIONS, parse_explanations
from hlv_assets.lib.prompts import GENERATION_TEMPLATE, generation_prompt, template_sha256
from hlv_assets.lib.selection import (
    DEFAULT_SELECTION,
    RELEASED_SELECTION_OPTIONS,
    SET_NAMES,
    select_explanations,
)

GENERATIONS_VERSION = f"gen-{template_sha256(GENERATION_TEMPLATE)}-v1"
SETS_VERSION = "sets-v1"
BUILTIN_SOURCES = ("none", "human")


def generation_items(items: pd.DataFrame, backend: str, n_items: int | None) -> pd.DataFrame:
    """The items a generator explains: all of them for a replay of published text (free), else the first n."""
    if backend == "released" or n_items is None:
        return items
    return items.head(n_items)


def generation_rows(items: pd.DataFrame, llm, spec, *, max_new_tokens: int) -> pd.DataFrame:
    """Ask `llm` (a cached backend) for every (item, label) answer and parse each into explanations."""
    params = dataclasses.replace(spec.generation_params(), max_new_tokens=max_new_tokens)
    prompts, meta = [], []
    for item in items.itertuples():
        for lab in LETTERS:
            prompts.append(generation_prompt(item.premise, item.hypothesis, lab))
            meta.append((item.item_index, item.uid, lab))
    generations = llm.generate(prompts, params)
    options = (
        RELEASED_PARSE_OPTIONS.get(spec.slug, DEFAULT_OPTIONS)
        if spec.backend == "released"
        else DEFAULT_OPTIONS
    )
    rows = []
    for (index, uid, lab), prompt, gen in zip(meta, prompts, generations, strict=True):
        parsed = parse_explanations(gen.text, options, complete=gen.finish_reason != "length")
        rows.append(
            {
                "item_index": int(index),
                "uid": uid,
                "label": lab,
                "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()[:16],
                "answer": gen.text,
                "parsed": parsed.explanations,
                "ok": parsed.ok,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "latency_s": gen.latency_s,
                "cost_usd": gen.cost_usd,
                "cached": gen.cached,
            }
        )
    return pd.DataFrame(rows)


def unparsed_share(frame: pd.DataFrame) -> tuple[float, list[str]]:
    bad = [f"{r.uid}/{r.label}" for r in frame.itertuples() if not r.ok]
    return (len(bad) / len(frame) if len(frame) else 0.0), bad


def split_source(source: str) -> tuple[str | None, str]:
    """`llama3.varierr-lg-first` -> ("llama3", "varierr-lg-first"); `human` -> (None, "human")."""
    if source in BUILTIN_SOURCES:
        return None, source
    generator, _, set_name = source.rpartition(".")
    if not generator or set_name not in SET_NAMES:
        raise ValueError(
            f"explanation source {source!r} is not none, human or <generator>.<set> with a set in "
            f"{', '.join(SET_NAMES)}"
        )
    return generator, set_name


def build_explanation_set(items: pd.DataFrame, source: str, generations=None) -> pd.DataFrame:
    """One row per item: uid, premise, hypothesis and the explanations ([text, letter] pairs) of `source`.

    `generations`: the generator's stored answers (records with data {item_index, label, parsed}); a
    generator's set covers the items it explained.
    """
    generator, set_name = split_source(source)
    base = items[["item_index", "uid", "premise", "hypothesis"]].copy()
    if source == "none":
        base["explanations"] = [[] for _ in range(len(base))]
        return base
    if source == "human":
        base["explanations"] = [[list(p) for p in ex] for ex in items.human_explanations]
        return base
    parsed: dict[str, dict[str, list[str]]] = {}
    for rec in generations:
        uid, lab = rec.key.split("|")
        parsed.setdefault(uid, {})[lab] = list(rec.data["parsed"])
    options = RELEASED_SELECTION_OPTIONS.get(generator, DEFAULT_SELECTION)
    rows = []
    for item in items.itertuples():
        if item.uid not in parsed:
            continue
        chosen = select_explanations(
            parsed[item.uid],
            set_name,
            human_labels=[lab for _, lab in item.human_explanations],
            varierr_counts=list(item.varierr_counts),
            mnli_counts=list(item.mnli_counts),
            options=options,
        )
        rows.append(
            {
                "item_index": item.item_index,
                "uid": item.uid,
                "premise": item.premise,
                "hypothesis": item.hypothesis,
                "explanations": [list(p) for p in chosen],
            }
        )
    return pd.DataFrame(rows, columns=["item_index", "uid", "premise", "hypothesis", "explanations"])
