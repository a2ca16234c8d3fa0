"""The distribution suite: Great Expectations Core 1.x checks that every row of a distribution is a distribution.

Each probability in [0, 1], no NaN (GX's between-expectation fails a NaN rather than skipping it here, because
we ask for `mostly=1` on a not-null expectation as well), each row sums to 1 within 1e-6 (a derived `prob_sum`
column: GX's multicolumn-sum expectation is exact), the expected row count.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

PROB_COLUMNS = ("p_e", "p_n", "p_c")
SUM_TOLERANCE = 1e-6
#: How many offending items a check result lists (the count says how many there are in all).
MAX_LISTED = 20
_lock = threading.Lock()


@dataclass
class SuiteResult:
    success: bool
    failures: list[str] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    offending: list[dict] = field(default_factory=list)  # the first MAX_LISTED items: uid, values, reason
    n_offending: int = 0

    def summary(self) -> str:
        """One line: how many items fail and the first one, or the suite-level failure."""
        if self.success:
            return "every row is a distribution"
        if self.offending:
            first = self.offending[0]
            return (f"{self.n_offending} item(s) are not distributions, e.g. uid {first['uid']}: {first['reason']}")
        return "; ".join(self.failures)


def _reason(values: dict[str, float], total: float) -> str:
    reasons = []
    for col, v in values.items():
        if math.isnan(v):
            reasons.append(f"{col} is NaN")
        elif math.isinf(v):
            reasons.append(f"{col} is {v}")
        elif not 0.0 <= v <= 1.0:
            reasons.append(f"{col}={v:.6g} outside [0, 1]")
    if not reasons and abs(total - 1.0) > SUM_TOLERANCE:
        reasons.append(f"row sums to {total:.6g}, not 1 (tolerance {SUM_TOLERANCE:g})")
    return "; ".join(reasons)


def offending_items(frame: pd.DataFrame) -> tuple[list[dict], int]:
    """The rows the suite refuses, with the reason for each: (the first MAX_LISTED, how many in all)."""
    out, n = [], 0
    uids = frame["uid"] if "uid" in frame.columns else pd.Series(range(len(frame)))
    extra = [c for c in ("conversion",) if c in frame.columns]
    for i, uid in enumerate(uids):
        values = {c: float(frame[c].iloc[i]) for c in PROB_COLUMNS}
        reason = _reason(values, sum(values.values()))
        if reason:
            n += 1
            if len(out) < MAX_LISTED:
                out.append({"uid": str(uid), **{c: frame[c].iloc[i] for c in extra}, **values, "reason": reason})
    return out, n


@lru_cache(maxsize=1)
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("hlv")
    asset = source.add_dataframe_asset(name="distribution")
    return context, asset.add_batch_definition_whole_dataframe("whole")


def distribution_suite(expected_rows: int | None):
    import great_expectations as gx

    ex = gx.expectations
    suite = gx.ExpectationSuite(name="distribution")
    for col in PROB_COLUMNS:
        suite.add_expectation(ex.ExpectColumnValuesToNotBeNull(column=col))
        suite.add_expectation(ex.ExpectColumnValuesToBeBetween(column=col, min_value=0.0, max_value=1.0))
    suite.add_expectation(ex.ExpectColumnValuesToNotBeNull(column="prob_sum"))
    suite.add_expectation(
        ex.ExpectColumnValuesToBeBetween(
            column="prob_sum", min_value=1 - SUM_TOLERANCE, max_value=1 + SUM_TOLERANCE
        )
    )
    if expected_rows is not None:
        suite.add_expectation(ex.ExpectTableRowCountToEqual(value=expected_rows))
    return suite


def validate_distribution(frame: pd.DataFrame, expected_rows: int | None = None) -> SuiteResult:
    """Run the distribution suite on a frame with columns p_e, p_n, p_c (and uid)."""
    missing = [c for c in PROB_COLUMNS if c not in frame.columns]
    if missing:
        return SuiteResult(False, [f"missing columns {missing}"])
    df = frame[list(PROB_COLUMNS)].astype(float).copy()
    df["prob_sum"] = df.sum(axis=1, skipna=False)
    with _lock:  # the ephemeral context is shared in the process
        _, batch_definition = _context()
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(distribution_suite(expected_rows))
    failures = []
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            detail = r.result.get("partial_unexpected_list") or r.result.get("observed_value")
            failures.append(f"{cfg.type}({cfg.kwargs.get('column', '')}): unexpected {detail}")
    offending, n_offending = offending_items(frame.assign(**{c: df[c] for c in PROB_COLUMNS}))
    return SuiteResult(bool(result.success), failures, {"evaluated": len(result.results), "rows": len(df)},
                       offending, n_offending)
