"""Blocking quality gates on every distribution asset: the Great Expectations distribution suite."""

from __future__ import annotations

import dagster as dg
import pandas as pd

DISTRIBUTION_CHECK = "distribution_suite"


def distribution_check_spec(asset_name: str, description: str = "",
                            partitions_def: dg.PartitionsDefinition | None = None) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DISTRIBUTION_CHECK, asset=asset_name, blocking=True, partitions_def=partitions_def,
        description=description or "GX: each probability in [0,1], rows sum to 1 (1e-6), no NaN, row count",
    )


def distribution_check_result(frame: pd.DataFrame, expected_rows: int | None, *, extra_failures: list[str] = (),
                              metadata: dict | None = None) -> dg.AssetCheckResult:
    from hlv_assets.lib.quality import validate_distribution

    result = validate_distribution(frame, expected_rows)
    failures = list(result.failures) + list(extra_failures)
    return dg.AssetCheckResult(
        check_name=DISTRIBUTION_CHECK,
        passed=result.success and not extra_failures,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failures": dg.MetadataValue.json(failures), "rows": len(frame),
                  "expected_rows": expected_rows if expected_rows is not None else -1, **(metadata or {})},
    )
