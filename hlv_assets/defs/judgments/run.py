"""One judgment partition, shared by `mjd` (the 341) and `item_set_mjd` (a user's set): judge, run the two
blocking checks, and only if both pass store the raw scores and yield the MJDs (the IO manager stores them)."""

import sys

import dagster as dg
import pandas as pd

from hlv_assets.defs.checks import commit_if_passed, distribution_check_result
from hlv_assets.defs.lineage import frame_metadata, frame_sha256, lineage
from hlv_assets.defs.partitions import display_partition
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.judgments import count_missing
from hlv_assets.lib.mjd_run import (
    JudgeOptions,
    judge,
    letter_mass_report,
    missing_letter_refusal,
    mjd_frames,
    raw_score_summary,
)

LETTER_MASS_CHECK = "letter_mass"


class JudgeConfig(dg.Config):
    """Per-run overrides of the profile's judging settings."""

    n_items: int | None = None
    orders: int | None = None  # K sampled explanation orders (None: the profile's; 0: all arrangements)
    explicit: bool = False
    min_letter_mass: float = 0.01
    max_low_mass_share: float = 0.5


def progress_log(context: dg.AssetExecutionContext):
    """Progress lines to the run's log (the UI) and to stderr (`hlv run` shows only warnings of the run log;
    a daemon-launched run keeps stderr in its compute logs)."""
    def log(line: str) -> None:
        context.log.info(line)
        print(line, file=sys.stderr, flush=True)

    return log


def judge_partition(context: dg.AssetExecutionContext, config: JudgeConfig, explanations: pd.DataFrame, *,
                    judge_slug: str, settings, results, llms, asset_key: str, item_set: str, input_name: str):
    profile = settings.get()
    spec = llms.spec(judge_slug)
    if "label_logits" not in spec.capabilities:
        raise dg.Failure(f"{judge_slug} exposes no label logits (capabilities {sorted(spec.capabilities)}): "
                         "it can generate explanations but not judge")
    n_items = config.n_items or profile.mjd_items
    items = explanations if n_items is None else explanations.head(n_items)
    orders = config.orders if config.orders is not None else profile.explanation_orders
    options = JudgeOptions(orders="all" if not orders else orders, explicit=config.explicit,
                           min_letter_mass=config.min_letter_mass, max_low_mass_share=config.max_low_mass_share,
                           missing_letters=spec.missing_letters())
    llm = llms.cached(judge_slug, settings.profile)
    _, records = judge(llm, items, options, progress=progress_log(context))
    refusal = missing_letter_refusal(records)
    if refusal:  # nothing is stored: neither the raw scores nor an MJD from fewer prompts
        raise dg.Failure(f"{asset_key}[{display_partition(context.partition_key)}]: {refusal}")
    frame, refused = mjd_frames(records, options.temperature)
    mass = letter_mass_report(records, options)
    expected = len(items) * frame.conversion.nunique() if len(frame) else len(items)
    checks = [distribution_check_result(frame, expected),
              dg.AssetCheckResult(check_name=LETTER_MASS_CHECK, passed=bool(mass["passed"]),
                                  description=None if mass["passed"] else
                                  f"{mass['low_mass_share']:.1%} of prompts put little mass on A/B/C "
                                  f"(limit {options.max_low_mass_share:.0%})",
                                  metadata={k: v for k, v in mass.items() if v is not None})]
    if all(c.passed for c in checks):  # the raw scores are stored only with the MJDs they produced
        results.store().replace_artifacts(
            "judgment", [(f"{r.item}|{i}", r.as_dict()) for i, r in enumerate(records)], asset_key=asset_key,
            partition_key=context.partition_key, profile=settings.profile,
            lineage=lineage(context, frame_sha256(items)))
    counters = llm.counters.as_dict()
    metadata = frame_metadata(frame, {input_name: frame_sha256(items)})
    metadata.update({
        "partition": display_partition(context.partition_key),
        "judge": dg.MetadataValue.json(llm.identity().as_dict()), "items": len(items), "prompts": len(records),
        "llm_calls": counters.get("misses", 0), "cache_hits": counters.get("hits", 0),
        "refused_conversions": dg.MetadataValue.json(refused), "letter_mass": dg.MetadataValue.json(mass),
        "missing_letters": options.missing_letters,
        "prompts_missing_letters": sum(count_missing(records).values()),
        "raw_scores": dg.MetadataValue.json(raw_score_summary(records)),
        "explanation_orders": str(options.orders), "items_sha256": items_sha256(items.uid), "item_set": item_set,
    })
    # the IO manager stores the frame (one row set per conversion) only if every blocking check passed
    output = dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(frame_sha256(frame)))
    yield from commit_if_passed(f"{asset_key}[{display_partition(context.partition_key)}]", output, checks)
