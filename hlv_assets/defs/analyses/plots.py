"""`ternary_plots`: the HJD and the MJD of every stored MJD partition on the simplex, the first few shown on
the asset page (base64 PNG in markdown metadata, capped in number and size), every one written as a PNG.
(No `from __future__ import annotations`: Dagster reads the config annotations at definition time.)"""

import dagster as dg
from pydantic import Field

from hlv_assets.defs.analyses.common import ANALYSES_VERSION, stored_hjd
from hlv_assets.defs.automation import refresh_condition
from hlv_assets.defs.lineage import png_markdown, result_table, versioned
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.report import reports_dir, ternary_figure
from hlv_assets.store.report_view import stored_mjd_partitions


class TernaryConfig(dg.Config):
    conversion: str = Field(default="softmax", description="which stored MJD conversion to plot")
    max_in_metadata: int = Field(default=6, description="plots shown inline on the asset page (all are written "
                                 "as files; the rest are listed with their paths)")
    max_inline_kb: int = Field(default=1500, description="size cap of the inline plots together (base64 PNG in "
                               "the run's event log): the plots past it are listed with their paths only")


class InlinePlots:
    """Collects PNGs for one markdown metadata value, up to `max_count` plots and `max_kb` of base64 text."""

    def __init__(self, max_count: int, max_kb: int) -> None:
        self.max_count, self.max_bytes = max_count, max_kb * 1024
        self.parts: list[str] = []
        self.size = 0

    def add(self, png: bytes, alt: str) -> bool:
        """Adds the plot when it fits under both caps; says whether it was added."""
        md = png_markdown(png, alt)
        if len(self.parts) >= self.max_count or self.size + len(md) > self.max_bytes:
            return False
        self.parts.append(f"**{alt}**\n\n{md}")
        self.size += len(md)
        return True

    def markdown(self, rest: int, folder) -> str:
        shown = "\n\n".join(self.parts) or "(no plot fits the inline caps)"
        return shown + (f"\n\n{rest} more plot(s): see `paths` and the table (files under `{folder}`)" if rest else "")


@dg.asset(group_name="analyses", kinds={"matplotlib"}, code_version=versioned(ANALYSES_VERSION),
          automation_condition=refresh_condition(),
          deps=["mjd", dg.AssetDep("baseline_distributions",
                                   partition_mapping=dg.SpecificPartitionsPartitionMapping(["chaosnli"]))])
def ternary_plots(context: dg.AssetExecutionContext, config: TernaryConfig, settings: HLVSettings,
                  results: ResultStoreResource) -> dg.MaterializeResult:
    """Each stored MJD (judge × explanations, `<judge>/<explanations>`) and the HJD of its items on a ternary
    diagram, one PNG per partition under `data/reports/<profile>/ternary/`. The asset page shows the first
    plots inline (`preview`, capped by `max_in_metadata` and `max_inline_kb`) and a table of every plot with
    its path."""
    profile = settings.profile
    store = results.store()
    hjd = stored_hjd(store, profile)
    parts = [p for p in stored_mjd_partitions(store, profile) if p["conversion"] == config.conversion]
    folder = reports_dir() / profile / "ternary"
    inline = InlinePlots(config.max_in_metadata, config.max_inline_kb)
    paths, listed = {}, []
    for p in parts:
        name = f"{p['judge']}/{p['explanations']}"
        mjd = store.distribution(f"mjd:{p['conversion']}", p["partition_key"], profile)
        path = folder / f"{p['judge']}__{p['explanations']}__{p['conversion']}.png"
        title = f"{name} ({p['conversion']}), n = {len(mjd)}, profile {profile}"
        png = ternary_figure(hjd, mjd, title=title, path=path)
        paths[name] = str(path)
        listed.append({"partition": name, "n": len(mjd), "inline": inline.add(png, title), "path": str(path)})
    context.log.info(f"{len(paths)} ternary plots under {folder} ({len(inline.parts)} shown on the asset page)")
    return dg.MaterializeResult(metadata={
        "plots": len(paths), "paths": dg.MetadataValue.json(paths),
        "plot_table": result_table(listed, ["partition", "n", "inline", "path"]),
        "preview": dg.MetadataValue.md(inline.markdown(len(paths) - len(inline.parts), folder)
                                       if paths else "(no stored MJD of this conversion)"),
    })
