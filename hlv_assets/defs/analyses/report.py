"""`paper_report`: every poster table with the paper's values and ours side by side
(`data/reports/paper_report.{md,html}`), shown on the asset page.
(No `from __future__ import annotations`: Dagster reads the config annotations at definition time.)"""

import dagster as dg
from pydantic import Field

from hlv_assets.defs.analyses.common import ANALYSES_VERSION
from hlv_assets.defs.automation import refresh_condition
from hlv_assets.defs.lineage import versioned
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.report import ReportOptions
from hlv_assets.lib.training_plan import configured_encoders
from hlv_assets.store.report_view import write_report


class ReportConfig(dg.Config):
    judges: dict[str, str] = Field(default={}, description="paper judge (Llama3, GPT-4o) -> our slug; default: "
                                   "the registered LLM whose model id matches")
    set_variant: str = Field(default="first", description="selection the paper's '+ model-ex' rows read")
    figure_metric: str = "kl"
    figure_conversion: str = "softmax"


def report_deps() -> list[str]:
    """Every asset whose rows the report reads (the fine-tunes of the configured encoders)."""
    names = ["distribution_comparison", "mjd_comparison", "replacement_curves", "preference_selection",
             "explanation_variability", "ternary_plots"]
    for encoder in configured_encoders():
        names += [f"finetune_{encoder.name}", f"finetune_{encoder.name}_baseline",
                  f"finetune_{encoder.name}_reference"]
    return names


@dg.asset(group_name="analyses", kinds={"markdown", "html"}, code_version=versioned(ANALYSES_VERSION),
          deps=report_deps(), automation_condition=refresh_condition())
def paper_report(context: dg.AssetExecutionContext, config: ReportConfig, settings: HLVSettings,
                 results: ResultStoreResource) -> dg.MaterializeResult:
    """Every table of the poster with the paper's values and ours side by side (difference, row id, asset
    partition; the reason where we cannot compute a cell; n where a row covers a subset), the VariErr / MNLI
    discrepancy, one ternary plot and the replacement curve: `data/reports/paper_report.md` and `.html`
    (`hlv report` writes the same from the store without a run). The asset page shows the report."""
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
