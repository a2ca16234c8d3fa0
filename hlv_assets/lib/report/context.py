"""The state one report is built with (store view, options, matched judges, counters, figures) and the row
finders the section builders share: our row for a poster row of the distribution and fine-tuning tables."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.report.cells import Ours, Reasons, Stats, best, n_cell, partition, weights_cell
from hlv_assets.lib.report.options import (
    N_ITEMS,
    PAPER_JUDGES,
    ReportOptions,
    ReportReader,
    StoreView,
    judge_specs,
    resolve_judges,
)


class ReportContext:
    """One report in the making: what it reads, and what it has counted and drawn so far."""

    def __init__(self, view: StoreView, options: ReportOptions, figures_dir: Path, reader: ReportReader):
        self.view = view
        self.options = options
        self.figures_dir = figures_dir
        self.reader = reader
        self.judges = resolve_judges(view.llms, options.judges)
        self.stats = Stats()
        self.figures: dict[str, Path] = {}
        self.judge_slugs = sorted(s["slug"] for s in judge_specs(view.llms))
        self.seen: set[str] = set()

    # ---- row finders ----------------------------------------------------------------------------------
    def explanations_of(self, paper: P.PaperRow) -> str | None:
        e = paper.explanations
        if e in (None, "none", "human"):
            return e
        generator = PAPER_JUDGES[paper.judge].generator
        return f"{generator}.{e}-{self.options.set_variant}"

    def judge_reason(self, reasons: Reasons, name: str) -> str:
        judge = PAPER_JUDGES[name]
        others = ", ".join(self.judge_slugs) or "none"
        return reasons.add(
            f"n/a: no {name} judge",
            f"the poster's {name} rows need {judge.needs}. No registered LLM with label logits matches "
            f"{judge.model} (registered judges: {others}; `hlv llm list`). Register one, materialize its `mjd` "
            "partitions, and these cells fill in; the stand-in judge's rows are in the section "
            "*Stand-in judge and encoder*.")

    def dist_ours(self, paper: P.PaperRow, reasons: Reasons) -> tuple[Ours, dict | None]:
        if paper.kind == "baseline":
            rec = best([r for r in self.view.rows("distribution-comparison", source=paper.source)
                         if not r.get("llm")], ())
            if rec is None:
                return Ours(reason=reasons.add("not run: distribution_comparison",
                                               "materialize `baseline_distributions` and "
                                               "`distribution_comparison` (hlv run)")), None
        else:
            slug = self.judges.get(paper.judge)
            if slug is None:
                return Ours(reason=self.judge_reason(reasons, paper.judge)), None
            src = self.explanations_of(paper)
            rec = best(self.view.rows("distribution-comparison", source="mjd", llm=slug, explanations=src),
                        self.options.conversions)
            if rec is None:
                return Ours(reason=reasons.add(f"not run: mjd[{slug}/{src}]",
                                               f"materialize `mjd` and `mjd_comparison` for `{slug}/{src}`")), None
        return self._ours(rec, P.DIST_METRICS), rec

    def _ours(self, rec: dict, keys: Iterable[str], n_key: str = "n") -> Ours:
        n = rec.get(n_key)
        if n is not None and int(n) < N_ITEMS:
            self.stats.subset_rows += 1
        conv = f" ({rec['conversion']})" if rec.get("conversion") else ""
        return Ours({k: rec.get(k) for k in keys}, n_cell(n), rec["id"] + conv, partition(rec))

    def finetune_ours(self, paper: P.PaperRow, family: str, reasons: Reasons, table: str) -> Ours:
        """Our row of `table` (finetune-comparison or anli-ood) for a poster row and an encoder family."""
        env = {"BERT": "HLV_BERT_MNLI", "RoBERTa": "HLV_ROBERTA_MNLI"}[family]
        match = {"encoder": family}
        if paper.kind == "baseline":
            match["source"] = paper.source
        elif paper.kind == "mjd":
            slug = self.judges.get(paper.judge)
            if slug is None:
                return Ours(reason=self.judge_reason(reasons, paper.judge))
            match.update(source="mjd", llm=slug, explanations=self.explanations_of(paper))
        else:
            match["source"] = paper.source
        if not self.view.rows(table, encoder=family):
            return Ours(reason=reasons.add(
                f"n/a: no {family} checkpoint",
                f"{family} fine-tunes start from an MNLI-fine-tuned {family} checkpoint that you supply ({env}: "
                "a path or model id) or that the MNLI stage trains (HLV_MNLI_TRAIN and HLV_MNLI_DEV; hours on a "
                "GPU). None is stored for this profile; the "
                "embedded MiniLM stand-in encoder's rows are in the section *Stand-in judge and encoder*."))
        rec = best(self.view.rows(table, **match), self.options.conversions, size_key="n_train")
        if rec is None:
            what = "/".join(str(match.get(k)) for k in ("source", "llm", "explanations") if match.get(k))
            return Ours(reason=reasons.add(f"not run: finetune_{family.lower()}[{what}]",
                                           f"materialize the {family} fine-tune of `{what}`"))
        head = ", FRESH head" if rec.get("head") == "fresh" else ""  # never an untrained head without saying so
        start = f", start: {rec['start_source']}" if rec.get("start_source") else ""
        ids = f"{rec['id']} ({weights_cell(rec)}{head}{start})"
        if table == "finetune-comparison":
            values = {m: (rec.get(f"dev_{m}"), rec.get(f"test_{m}")) for m in P.FT_METRICS}
            values = {k: (None if None in v else v) for k, v in values.items()}
            ours = Ours(values, n_cell(rec.get("n_train")), ids, partition(rec))
        else:
            ours = Ours({r: rec.get(f"{r}_weighted_f1") for r in P.ANLI_COLUMNS}, n_cell(rec.get("n_train")),
                        ids, partition(rec))
        if rec.get("n_train") is not None and int(rec["n_train"]) < N_ITEMS:
            self.stats.subset_rows += 1
        return ours
