"""The report's opening sections: the header (store, profile, matched judges) and the datasets table (the
poster's counts beside those of the stored raw assets)."""

from __future__ import annotations

from datetime import datetime, timezone

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.missing_letters import DEFAULT_MISSING_LETTERS
from hlv_assets.lib.profiles import PROFILES
from hlv_assets.lib.report.context import ReportContext
from hlv_assets.lib.report.document import Block, Heading, Para, Table


def header(ctx: ReportContext) -> list[Block]:
    prof = PROFILES.get(ctx.view.profile)
    counts = ", ".join(f"{name} {len(rows)}" for name, rows in ctx.view.tables.items() if rows) or "none"
    judges = ", ".join(f"{k} → `{v}`" if v else f"{k} → not registered" for k, v in ctx.judges.items())
    blocks: list[Block] = [
        Heading("A Rose by Any Other Name: the paper's numbers and ours", 1),
        Para(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the results store `{ctx.view.db}`, "
             f"profile **{ctx.view.profile}**. Stored rows: {counts}. Paper judges: {judges}."),
        Para("Each poster table (Chen et al., Findings of ACL 2025; values transcribed in "
             "`hlv_assets/lib/paper_numbers.py`) is shown with the paper's value, ours and the difference "
             "(ours − paper) side by side. Every value of ours names its stored row (`id`, see `hlv tables`) "
             "and the asset partition that wrote it. A cell we cannot compute says why in a few words; the "
             "full reason is listed under the table. `n` is the number of the 341 items a row was computed "
             "on: fewer than 341 is a subset (the profile's), and such numbers are not comparable to the "
             "paper's."),
    ]
    if prof is not None:
        blocks.append(Para(
            f"Profile {prof.name}: judges see {prof.mjd_items or 341} items with "
            f"{prof.explanation_orders or 'all'} explanation order(s) per item; fine-tunes run "
            f"{prof.finetune_epochs} epoch(s), seeds {list(prof.finetune_seeds)}, evaluated on "
            f"{prof.eval_items or 'all'} items per split."))
    rules = api_judge_rules(ctx)
    if rules:
        blocks.append(Para(rules))
    return blocks


def api_judge_rules(ctx: ReportContext) -> str:
    """Which rule each API judge (an `openai` spec) applies to a letter missing from its top-k
    log-probabilities: as registered, and as recorded on its stored MJD rows; "" when there is no API judge."""
    parts = []
    for spec in sorted(ctx.view.llms, key=lambda s: s["slug"]):
        if spec.get("backend") != "openai" or "label_logits" not in (spec.get("capabilities") or ()):
            continue
        registered = (spec.get("options") or {}).get("missing_letters", DEFAULT_MISSING_LETTERS)
        used = sorted({str(r.get("missing_letters")) for r in
                       ctx.view.rows("distribution-comparison", source="mjd", llm=spec["slug"])})
        parts.append(f"`{spec['slug']}` {registered} (registered; its MJD rows: {', '.join(used) or 'none yet'})")
    if not parts:
        return ""
    return ("Letters missing from an API judge's top-k log-probabilities (`missing_letters`: refuse the MJD, "
            "renormalize over the letters present, or floor at the smallest returned log-probability): "
            + "; ".join(parts) + ".")


def datasets(ctx: ReportContext) -> list[Block]:
    rows = []
    frames = {a: ctx.reader.asset_frame(a) for a in ("chaosnli_mnli", "varierr_nli", "anli_test", "hlv_items")}
    n341 = len(frames["hlv_items"]) if frames["hlv_items"] is not None else None

    def have(a, text):
        return text if frames[a] is not None else f"not materialized: {a}"

    anli = frames["anli_test"]
    anli_counts = ""
    anli_overlap = ""
    if anli is not None:
        sizes = anli.groupby("round").size()
        anli_counts = ", ".join(f"{v:,} ({k})" for k, v in sizes.items())
        if frames["hlv_items"] is not None:
            def key(df):
                return set(("".join(p.split()), "".join(h.split())) for p, h in zip(df.premise, df.hypothesis))

            anli_overlap = str(len(key(anli) & key(frames["hlv_items"])))
    def per_item(a: str, column: str) -> str:
        frame = frames[a]
        if frame is None:
            return f"not materialized: {a}"
        sums = sorted({int(sum(v)) for v in frame[column]})
        return " or ".join(str(x) for x in sums)

    ours = {
        "MNLI (Williams et al., 2018)": (
            "not in the data pack: MNLI enters through ChaosNLI's copy of its original labels",
            per_item("chaosnli_mnli", "original_counts"), have("hlv_items", str(n341)), "hlv_items"),
        "ChaosNLI (Nie et al., 2020a)": (
            have("chaosnli_mnli", f"{len(frames['chaosnli_mnli']):,} (MNLI part)"
                 if frames["chaosnli_mnli"] is not None else ""), per_item("chaosnli_mnli", "hjd_counts"),
            have("hlv_items", str(n341)), "chaosnli_mnli"),
        "VariErr NLI (Weber-Genzel et al., 2024)": (
            have("varierr_nli", f"{len(frames['varierr_nli']):,}" if frames["varierr_nli"] is not None
                 else ""), per_item("hlv_items", "varierr_counts") + " (round 1, on the 341)",
            have("hlv_items", str(n341)), "varierr_nli"),
        "ANLI test (Nie et al., 2020a)": (have("anli_test", anli_counts), have("anli_test", "1 (gold label)"),
                                          have("anli_test", anli_overlap), "anli_test"),
    }
    for name, (inst, ann, expl, overlap) in P.DATASET_TABLE.items():
        o_inst, o_ann, o_overlap, asset = ours[name]
        rows.append([name, inst, o_inst, ann, o_ann, expl, str(overlap), o_overlap, asset])
    return [Heading("Datasets (Introduction & Method)"),
            Table(["dataset", "instances paper", "instances ours", "annotations paper", "annotations ours",
                   "explanations", "valid overlap paper", "valid overlap ours", "asset"], rows),
            Para("Valid overlap = the items of the 341 (VariErr items with exactly 4 round-1 explanations, "
                 "intersected with ChaosNLI-MNLI); ours counts the stored `hlv_items` (and, for ANLI, the "
                 "items whose premise and hypothesis equal one of the 341).")]
