"""Blocking quality gates on every distribution asset (the Great Expectations distribution suite), run inside
the asset before anything is written: a value that fails never becomes current."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import dagster as dg
import pandas as pd

from hlv_assets.lib.quality import SuiteResult, validate_distribution

DISTRIBUTION_CHECK = "distribution_suite"


def distribution_check_spec(asset_name: str, description: str = "",
                            partitions_def: dg.PartitionsDefinition | None = None) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DISTRIBUTION_CHECK, asset=asset_name, blocking=True, partitions_def=partitions_def,
        description=description or "GX: each probability in [0,1], rows sum to 1 (1e-6), no NaN, row count; "
                                   "run before the value is stored: a failure stores nothing",
    )


def _offending_table(suite: SuiteResult) -> dg.MetadataValue:
    if not suite.offending:
        return dg.MetadataValue.md("(no item-level failure)")
    frame = pd.DataFrame(suite.offending)
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=".6g"))


def distribution_check_result(frame: pd.DataFrame, expected_rows: int | None, *, extra_failures: list[str] = (),
                              metadata: dict | None = None) -> dg.AssetCheckResult:
    """The suite's verdict on `frame` as an AssetCheckResult; on failure its metadata lists the offending items
    (uid, values, reason; the first 20 and their count) and its description says what failed in one line."""
    suite = validate_distribution(frame, expected_rows)
    failures = list(suite.failures) + list(extra_failures)
    passed = suite.success and not extra_failures
    description = None if passed else (suite.summary() if not suite.success else "; ".join(extra_failures))
    return dg.AssetCheckResult(
        check_name=DISTRIBUTION_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"failures": dg.MetadataValue.json(failures), "rows": len(frame),
                  "expected_rows": expected_rows if expected_rows is not None else -1,
                  "offending_count": suite.n_offending, "offending_items": _offending_table(suite),
                  "offending": dg.MetadataValue.json(_plain(suite.offending)), **(metadata or {})},
    )


def _plain(items: list[dict]) -> list[dict]:
    """JSON-safe offending items: NaN and infinity as strings (metadata JSON must stay valid)."""
    def safe(v):
        return str(v) if isinstance(v, float) and not math.isfinite(v) else v

    return [{k: safe(v) for k, v in item.items()} for item in items]


def commit_if_passed(where: str, output: dg.Output, checks: Iterable[dg.AssetCheckResult]) -> Iterator:
    """Check before commit: yield `output` (which the IO manager then stores) and the check results only when
    every check passed. Otherwise yield the results (the failed ones show on the asset page with their
    offending items) and fail the step in one line: no Output, so nothing is stored, no materialization is
    recorded, downstream does not run, and the previous version stays current."""
    checks = list(checks)
    failed = [c for c in checks if not c.passed]
    if not failed:
        yield output
        yield from checks
        return
    yield from checks
    what = "; ".join(f"{c.check_name}: {c.description or 'failed'}" for c in failed)
    raise dg.Failure(
        description=f"{where} failed its blocking check(s), nothing was stored and the previous version stays "
                    f"current: {what}",
        metadata={"failed_checks": dg.MetadataValue.json([c.check_name for c in failed])},
        allow_retries=False,
    )
