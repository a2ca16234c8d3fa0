"""`hlv run --dry-run`: the LLM calls a run would make (cache misses only), estimated tokens and cost."""

from __future__ import annotations

import dataclasses

import pandas as pd

from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.lib import raw
from hlv_assets.lib.datasource import DataSource
from hlv_assets.lib.explanation_sets import build_explanation_set, generation_items
from hlv_assets.lib.judgments import prompt_grid
from hlv_assets.lib.nli import LETTERS
from hlv_assets.lib.profiles import get_profile
from hlv_assets.lib.prompts import generation_prompt
from hlv_assets.llm.base import LABEL_LOGITS
from hlv_assets.store.export import asset_path


def _items() -> pd.DataFrame:
    src = DataSource.from_env()
    chaos = raw.load_chaosnli(src.path(raw.CHAOSNLI_MNLI))
    return raw.load_hlv_items(src.path(raw.HLV_ITEMS), chaos, raw.load_varierr(src.path(raw.VARIERR)))


def _explanation_set(source: str, items: pd.DataFrame) -> pd.DataFrame | None:
    if source in ("none", "human"):
        return build_explanation_set(items, source)
    try:
        return pd.read_parquet(asset_path("explanation_sets", source))
    except SystemExit:
        return None


def plan_steps(steps, instance) -> str:
    profile = get_profile()
    llms = LLMResource()
    items = _items()
    lines = ["| step | calls (misses) | cache hits | est. prompt tokens | est. completion tokens | est. cost USD |",
             "|---|---|---|---|---|---|"]
    totals = [0, 0, 0, 0, 0.0]
    for step in steps:
        if step.asset == "llm_generations":
            spec = llms.spec(step.partition)
            chosen = generation_items(items, spec.backend, profile.generation_items)
            prompts = [generation_prompt(r.premise, r.hypothesis, lab) for r in chosen.itertuples() for lab in LETTERS]
            params = dataclasses.replace(spec.generation_params(), max_new_tokens=profile.max_new_tokens)
            plan = llms.cached(step.partition, profile.name).plan(prompts, params)
        elif step.asset == "mjd":
            judge, source = step.partition.split("/", 1)
            expl = _explanation_set(source, items)
            if expl is None:
                lines.append(f"| {step.label()} | unknown until explanation_sets[{source}] exists | | | | |")
                continue
            expl = expl if profile.mjd_items is None else expl.head(profile.mjd_items)
            orders = "all" if not profile.explanation_orders else profile.explanation_orders
            prompts = [g.prompt for r in expl.itertuples()
                       for g in prompt_grid(r.premise, r.hypothesis, [list(p) for p in r.explanations], item=r.uid,
                                            orders=orders)]
            plan = llms.cached(judge, profile.name).plan(prompts, operation=LABEL_LOGITS)
        else:
            continue
        lines.append(f"| {step.label()} | {plan.misses} | {plan.hits} | {plan.est_prompt_tokens} | "
                     f"{plan.est_completion_tokens} | {plan.est_cost_usd:.4f} |")
        for i, v in enumerate((plan.misses, plan.hits, plan.est_prompt_tokens, plan.est_completion_tokens,
                               plan.est_cost_usd)):
            totals[i] += v
    lines.append(f"| **total** | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} | {totals[4]:.4f} |")
    return "\n".join(lines)
