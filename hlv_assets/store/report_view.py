"""The paper report fed from the results store: the plain-data view and the reader the report builder
(`hlv_assets.lib.report`) takes, and `write_report(store, profile)`, which `hlv report` and the `paper_report`
asset call."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlmodel import Session, func, select

from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.report import ReportOptions, ReportResult, StoreView, render_report
from hlv_assets.store import registry
from hlv_assets.store.db import redact
from hlv_assets.store.models import DistributionRow
from hlv_assets.store.tables import TABLES, table_records


def load_view(store, profile: str) -> StoreView:
    """Every result table's records of `profile`, the registered LLMs and the redacted database URL."""
    tables = {name: table_records(store, name, profile) for name in TABLES}
    llms = [{**e.spec, "active": e.active} for e in registry.entries(store.engine)]
    return StoreView(profile, tables, llms, db=redact(str(store.engine.url)))


def stored_mjd_partitions(store, profile: str) -> list[dict]:
    """Every stored MJD (judge, explanations, conversion, partition key, n) of the profile."""
    with Session(store.engine) as session:
        q = (select(DistributionRow.asset_key, DistributionRow.partition_key, func.count())
             .where(DistributionRow.asset_key.like("mjd:%"), DistributionRow.current == True,  # noqa: E712
                    DistributionRow.profile == profile)
             .group_by(DistributionRow.asset_key, DistributionRow.partition_key))
        found = list(session.exec(q))
    out = []
    for asset_key, partition_key, n in found:
        if "|" not in partition_key:
            continue
        explanations, judge = partition_key.split("|", 1)
        out.append({"judge": judge, "explanations": explanations, "conversion": asset_key.split(":", 1)[1],
                    "partition_key": partition_key, "n": int(n)})
    return sorted(out, key=lambda d: (d["judge"], d["explanations"], d["conversion"]))


class StoreReportReader:
    """The report's `ReportReader` on a results store and a profile."""

    def __init__(self, store, profile: str):
        self.store = store
        self.profile = profile

    def mjd_partitions(self) -> list[dict]:
        return stored_mjd_partitions(self.store, self.profile)

    def distribution(self, asset_key: str, partition_key: str) -> pd.DataFrame:
        return self.store.distribution(asset_key, partition_key, self.profile)

    def asset_frame(self, asset: str) -> pd.DataFrame | None:
        path = output_dir() / "assets" / self.profile / f"{asset}.parquet"
        return pd.read_parquet(path) if path.exists() else None


def write_report(store, profile: str, path: Path | str | None = None,
                 options: ReportOptions | None = None) -> ReportResult:
    """Write the report as Markdown (`path`, default `data/reports/paper_report.md`) and HTML beside it (a
    `.html` path writes the HTML there and the Markdown beside it); figures go to `figures/` next to them."""
    return render_report(load_view(store, profile), StoreReportReader(store, profile), path, options)
