"""The report's options, result and inputs: the paper judges and how registered LLMs are matched to them, the
plain-data view of the results store the builder reads, and the reader it asks for distributions and assets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from hlv_assets.lib.paths import output_dir

N_ITEMS = 341
REPORT_STEM = "paper_report"
PROB = ["p_e", "p_n", "p_c"]


def reports_dir() -> Path:
    """`data/reports` (or `$HLV_HOME/reports`): the report, its figures and the analyses' PNGs."""
    return output_dir() / "reports"


@dataclass(frozen=True)
class PaperJudge:
    name: str  # as the poster names it
    model: str
    pattern: str  # matched against a registered spec's model id
    generator: str  # slug of the LLM whose explanations the paper's "+ model-ex" rows use
    needs: str


PAPER_JUDGES: dict[str, PaperJudge] = {
    "Llama3": PaperJudge(
        "Llama3", "Llama-3-70B-Instruct", r"llama-?3(\.\d)?-70b", "llama3",
        "Llama-3-70B-Instruct as the judge (bf16, about 140 GB of GPU memory: a `vllm` spec, see the examples at "
        "the end of `hlv_assets/llm/llms.yaml`)"),
    "GPT-4o": PaperJudge(
        "GPT-4o", "GPT-4o", r"gpt-?4o", "gpt4o",
        "GPT-4o as the judge through the OpenAI API with top log-probabilities (an `openai` spec whose key is in "
        "the environment variable it names)"),
}


def judge_specs(llms: Iterable[dict]) -> list[dict]:
    """The registered LLMs that can judge (label logits), released replays excluded."""
    return [s for s in llms if "label_logits" in (s.get("capabilities") or ()) and s.get("backend") != "released"]


def resolve_judges(llms: Iterable[dict], overrides: dict[str, str] | None = None) -> dict[str, str | None]:
    """Paper judge name -> the registered slug that plays it (by model id, or `overrides`), else None."""
    specs = judge_specs(llms)
    out: dict[str, str | None] = {}
    for name, judge in PAPER_JUDGES.items():
        if overrides and overrides.get(name):
            out[name] = overrides[name]
            continue
        hits = sorted(s["slug"] for s in specs if re.search(judge.pattern, str(s.get("model", "")), re.I))
        out[name] = hits[0] if hits else None
    return out


@dataclass
class StoreView:
    """What the report reads from the results store, as plain data: every result table's records of the
    profile, the registered LLMs (spec dicts with `active`) and the redacted database URL."""

    profile: str
    tables: dict[str, list[dict]]
    llms: list[dict]
    db: str = ""

    def rows(self, name: str, **match) -> list[dict]:
        return [r for r in self.tables.get(name, []) if all(r.get(k) == v for k, v in match.items())]


class ReportReader(Protocol):
    """The stored frames the report draws from (the store layer implements it: `hlv_assets.store.report_view`)."""

    def mjd_partitions(self) -> list[dict]:
        """Every stored MJD of the profile: dicts with judge, explanations, conversion, partition_key, n."""

    def distribution(self, asset_key: str, partition_key: str) -> pd.DataFrame:
        """A stored distribution (uid, p_e, p_n, p_c); empty when none is stored."""

    def asset_frame(self, asset: str) -> pd.DataFrame | None:
        """A raw asset's stored table (e.g. `hlv_items`), or None when it is not materialized."""


@dataclass(frozen=True)
class ReportOptions:
    """Choices of the report. `judges`: paper judge ("Llama3", "GPT-4o") -> our slug (default: the registered
    LLM whose model id matches). `set_variant`: which selection the paper's "+ model-ex" rows read (first /
    longest; the poster does not say, *our reading*: first). `conversions`: preference order of MJD
    conversions for the paper rows (normalize = as published)."""

    judges: dict = field(default_factory=dict)
    set_variant: str = "first"
    conversions: tuple[str, ...] = ("normalize", "softmax")
    figure_metric: str = "kl"
    figure_conversion: str = "softmax"

@dataclass
class ReportResult:
    markdown_path: Path
    html_path: Path
    markdown: str
    markdown_inline: str
    figures: dict[str, Path]
    our_cells: int
    missing_cells: int
    subset_rows: int

