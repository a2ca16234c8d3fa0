"""The report's sections without paper numbers to compare: the stand-in judge and encoder rows (shown with the
paper's values for orientation only), the replacement curves and the ternary figure."""

from __future__ import annotations

import re

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.report.cells import best, fmt, n_cell, partition, pct, weights_cell
from hlv_assets.lib.report.context import ReportContext
from hlv_assets.lib.report.document import Block, Figure, Heading, Para, Table
from hlv_assets.lib.report.figures import replacement_figure, ternary_figure
from hlv_assets.lib.report.options import N_ITEMS


def replacement(ctx: ReportContext) -> list[Block]:
    records = ctx.view.tables.get("replacement", [])
    blocks: list[Block] = [
        Heading("Human versus model: are they different and does it matter?"),
        Para("The poster shows this analysis as two figures only ((a) human explanations gradually replaced "
             "by model explanations, (b) by noise explanations), so there are no paper numbers to put next "
             "to ours. *Our reading* (SPEC §6): r of the 4 human explanations of an item are replaced by the "
             "model explanation of the same label and slot (r = 4 is the VariErr-LG set), or by a seeded "
             "noise explanation (another item's explanation of the same label); the MJD of each r is "
             "compared with the HJD.")]
    if not records:
        return blocks + [Para("Not computed: no `replacement` rows are stored for this profile "
                              "(materialize `replacement_curves[<judge>]`).")]
    judge = ctx.judges.get("Llama3")
    judges = sorted({r["judge"] for r in records})
    if judge not in judges:
        judge = judges[0]
    conv = ctx.options.figure_conversion
    if not any(r.get("conversion") == conv for r in records if r["judge"] == judge):
        conv = next(r["conversion"] for r in records if r["judge"] == judge)
    path = ctx.figures_dir / "replacement.png"
    if replacement_figure(records, judge, conversion=conv, metric=ctx.options.figure_metric, path=path):
        ctx.figures["replacement"] = path
        stand_in = "" if judge in ctx.judges.values() else " (a stand-in judge, not the paper's)"
        blocks.append(Figure(path, f"Replacement curves of judge {judge}{stand_in}: "
                                   f"{ctx.options.figure_metric.upper()} to the HJD against r ({conv})."))
    rows = []
    for r in sorted((r for r in records if r.get("conversion") == conv),
                    key=lambda r: (r["judge"], r["kind"], r.get("r") if r.get("r") is not None else -1)):
        if int(r.get("n") or 0) < N_ITEMS:
            ctx.stats.subset_rows += 1
        ctx.stats.ours += 4
        rows.append([r["judge"], r["kind"], "" if r.get("r") is None else str(r["r"]), n_cell(r.get("n")),
                     fmt(r.get("kl")), fmt(r.get("jsd")), fmt(r.get("tvd")), fmt(r.get("dcor")), r["id"],
                     partition(r)])
    blocks.append(Table(["judge", "kind", "r", "n", "KL", "JSD", "TVD", "D.Corr", "id", "asset partition"],
                        rows))
    return blocks


_KINDS = {"none": "Llama3 MJD", "human": "+ human-ex", "lf": "+ LF model-ex",
          "varierr-lg": "+ VariErr LG model-ex", "mnli-lg": "+ MNLI LG model-ex"}


def _kind_of(explanations: str) -> str | None:
    if explanations in ("none", "human"):
        return explanations
    m = re.search(r"\.(lf|varierr-lg|mnli-lg)-", explanations or "")
    return m.group(1) if m else None


def _llama3_rows() -> dict:
    return {(p.explanations): p for p in P.MAIN_TABLE if p.judge == "Llama3"}


def _paper_slugs(ctx: ReportContext) -> set[str]:
    return {v for v in ctx.judges.values() if v}


def stand_ins(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [
        Heading("Stand-in judge and encoder"),
        Para("Rows computed with models that are not the paper's (the embedded SmolLM2-135M-Instruct judge, "
             "the embedded all-MiniLM-L6-v2 encoder, or the random tiny models of the `tiny` profile). They "
             "show that each step of the method runs end to end; they are **not** a reproduction of the "
             "paper's numbers, which are shown for orientation only (no difference is computed).")]
    return (blocks + _stand_in_mjds(ctx) + _stand_in_preference(ctx) + _stand_in_finetunes(ctx)
            + _stand_in_anli(ctx))


def _stand_in_mjds(ctx: ReportContext) -> list[Block]:
    paper_slugs = _paper_slugs(ctx)
    mjd_rows = [r for r in ctx.view.rows("distribution-comparison", source="mjd")
                if r.get("llm") not in paper_slugs]
    paper_by = _llama3_rows()
    rows = []
    for r in sorted(mjd_rows, key=lambda r: (r["llm"], r["explanations"], r.get("conversion") or "")):
        k = _kind_of(r.get("explanations"))
        paper = paper_by.get(k) if k else None
        cells = [r["llm"], r["explanations"], r.get("conversion") or "", n_cell(r.get("n"))]
        for m in P.DIST_METRICS:
            cells += [fmt(r.get(m)), fmt(paper.values[m]) if paper else ""]
            ctx.stats.ours += 1
        uniform = best([x for x in ctx.view.rows("distribution-comparison", source="uniform")
                        if x.get("items_sha256") == r.get("items_sha256")], ())
        cells += [fmt(uniform.get("kl")) if uniform else "", _KINDS.get(k, "") if paper else "", r["id"],
                  partition(r)]
        rows.append(cells)
    if not rows:
        return [Para("No MJD of a stand-in judge is stored.")]
    cols = ["judge", "explanations", "conversion", "n"]
    for m in ("KL", "JSD", "TVD", "D.Corr"):
        cols += [f"{m} ours", f"{m} paper (Llama3)"]
    return [Heading("Stand-in judges: distribution comparison", 3),
            Table(cols + ["uniform KL (same items)", "paper row", "id", "asset partition"], rows)]


def _stand_in_preference(ctx: ReportContext) -> list[Block]:
    paper_slugs = _paper_slugs(ctx)
    pref = [r for r in ctx.view.tables.get("preference-selection", [])
            if r.get("kind") == "mjd" and r.get("judge") not in paper_slugs]
    if not pref:
        return []
    paper_pref = {p.explanations: p for p in P.PREFERENCE_TABLE}
    p_rows = []
    for r in sorted(pref, key=lambda r: (r["judge"], r.get("conversion") or "", r["set"])):
        paper = paper_pref.get(r["set"])
        cells = [r["judge"], r["set"], r.get("conversion") or "", n_cell(r.get("n"), 100),
                 pct(r.get("filled_share")), pct(paper.values.get("share")) if paper else ""]
        for m in P.DIST_METRICS:
            cells += [fmt(r.get(m)), fmt(paper.values[m]) if paper else ""]
            ctx.stats.ours += 1
        p_rows.append(cells + [r["id"], partition(r)])
    cols = ["judge", "explanations", "conversion", "n", "share ours (these items)", "share paper"]
    for m in ("KL", "JSD", "TVD", "D.Corr"):
        cols += [f"{m} ours", f"{m} paper (Llama3)"]
    return [Heading("Stand-in judges: human-preference selection", 3),
            Table(cols + ["id", "asset partition"], p_rows)]


def _trained_on(r: dict) -> str:
    return r.get("source") if r.get("source") != "mjd" else f"mjd {r.get('llm')}/{r.get('explanations')}"


def _stand_in_finetunes(ctx: ReportContext) -> list[Block]:
    ft = [r for r in ctx.view.tables.get("finetune-comparison", []) if r.get("encoder") not in
          ("BERT", "RoBERTa")]
    if not ft:
        return []
    paper_by = _llama3_rows()
    paper_ft = {("baseline", p.source): p for p in P.MAIN_TABLE if p.kind == "baseline"}
    f_rows = []
    for r in ft:
        paper = paper_ft.get(("baseline", r.get("source")))
        if r.get("source") == "mjd":
            paper = paper_by.get(_kind_of(r.get("explanations")))
        cells = [r.get("encoder", ""), _trained_on(r), n_cell(r.get("n_train"))]
        for m in P.FT_METRICS:
            cells += [fmt((r.get(f"dev_{m}"), r.get(f"test_{m}"))),
                      fmt(paper.values[f"roberta_{m}"]) if paper else ""]
            ctx.stats.ours += 1
        cells += [fmt((r.get("dev_jsd"), r.get("test_jsd"))),
                  fmt((r.get("dev_majority_accuracy"), r.get("test_majority_accuracy"))), weights_cell(r)]
        f_rows.append(cells + [r["id"], partition(r)])
    cols = ["encoder", "trained on", "n"]
    for m in ("KL", "CE", "weighted F1"):
        cols += [f"{m} ours (dev / test)", f"{m} paper RoBERTa"]
    cols += ["JSD (dev / test)", "majority acc. (dev / test)", "weights"]
    return [Heading("Stand-in encoder: fine-tuning comparison", 3), Table(cols + ["id", "asset partition"], f_rows),
            Para("JSD and majority acc. are the ChaosNLI scorer's JSD and New Acc.; weights: the checkpoint "
                 "selection (final = the last step's, as the authors' runs), seeds and precision.")]


def _stand_in_anli(ctx: ReportContext) -> list[Block]:
    anli = [r for r in ctx.view.tables.get("anli-ood", []) if r.get("encoder") not in ("BERT", "RoBERTa")]
    if not anli:
        return []
    a_rows = []
    for r in anli:
        cells = [r.get("encoder", ""), _trained_on(r)] + [fmt(r.get(f"{x}_weighted_f1")) for x in P.ANLI_COLUMNS]
        ctx.stats.ours += 3
        a_rows.append(cells + [r["id"], partition(r)])
    return [Heading("Stand-in encoder: ANLI test (weighted F1)", 3),
            Table(["encoder", "trained on", "R1", "R2", "R3", "id", "asset partition"], a_rows)]


def ternary(ctx: ReportContext) -> list[Block]:
    parts = ctx.reader.mjd_partitions()
    if not parts:
        return []
    paper_slugs = [v for v in ctx.judges.values() if v]

    def rank(p):
        return (p["judge"] not in paper_slugs, p["explanations"] != "human",
                p["conversion"] != ctx.options.figure_conversion, -p["n"])

    pick = sorted(parts, key=rank)[0]
    hjd = ctx.reader.distribution("baseline_distributions", "chaosnli")
    mjd = ctx.reader.distribution(f"mjd:{pick['conversion']}", pick["partition_key"])
    if hjd.empty or mjd.empty:
        return []
    path = ctx.figures_dir / "ternary.png"
    title = (f"{pick['judge']} + {pick['explanations']} ({pick['conversion']}), n = {len(mjd)}, "
             f"profile {ctx.view.profile}")
    ternary_figure(hjd, mjd, title=title, path=path)
    ctx.figures["ternary"] = path
    return [Heading("HJD and MJD of the items"),
            Figure(path, f"Each item's HJD (ChaosNLI) and MJD (judge {pick['judge']}, explanations "
                         f"{pick['explanations']}, {pick['conversion']}) on the simplex; `ternary_plots` "
                         "draws one such plot per stored MJD.")]
