"""Result tables as `hlv tables` prints them: rows from the store with their stable ids, in md, json or csv."""

from __future__ import annotations

import csv
import io
import json

from hlv_assets.store.results import ResultStore

#: CLI name -> store table, with the columns shown first (others follow).
TABLES = {
    "distribution-comparison": ("distribution_comparison",
                                ["id", "source", "llm", "explanations", "conversion", "profile", "n",
                                 "items_sha256", "kl", "jsd", "tvd", "dcor"]),
    "finetune-comparison": ("finetune_comparison", ["id", "encoder", "source", "llm", "explanations", "conversion",
                                                    "profile", "selection", "seeds", "precision"]),
    "anli-ood": ("anli_ood", ["id", "encoder", "source", "llm", "explanations", "conversion", "profile",
                              "selection", "seeds", "precision"]),
    "replacement": ("replacement", ["id", "judge", "kind", "r", "conversion", "n", "kl", "jsd", "tvd", "dcor",
                                    "model_set"]),
    "preference-selection": ("preference_selection", ["id", "kind", "judge", "set", "label", "conversion", "n",
                                                      "filled_share", "poster_share", "kl", "jsd", "tvd", "dcor"]),
    "variability": ("variability", ["id", "set", "scope", "n", "n_pairs", "lex1", "lex2", "lex3", "syn1", "syn2",
                                    "syn3", "cos", "euc", "avg", "embedder"]),
}


def table_records(store: ResultStore, name: str, profile: str | None = None) -> list[dict]:
    if name not in TABLES:
        raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    table, first = TABLES[name]
    records = []
    for row in store.current_rows(table, profile):
        rec = {"id": row.row_id, **row.data}
        rec.setdefault("profile", row.profile)
        rec.setdefault("items_sha256", row.items_sha256)
        rec["asset_partition"] = f"{row.asset_key}[{row.partition_key}]" if row.partition_key else row.asset_key
        records.append(rec)
    columns = [c for c in first if any(c in r for r in records)] + sorted(
        {k for r in records for k in r} - set(first))
    return [{c: r.get(c) for c in columns} for r in records]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.5f}"
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def render(records: list[dict], fmt: str, *, short: bool = False) -> str:
    if fmt == "json":
        return json.dumps(records, indent=2, default=str)
    if not records:
        return "(no rows)"
    columns = list(records[0])
    if short:
        columns = [c for c in columns if c not in ("items_sha256", "asset_partition", "item_set")]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({c: _fmt(r.get(c)) for c in columns})
        return buf.getvalue()
    if fmt != "md":
        raise SystemExit(f"unknown format {fmt!r}: md, json or csv")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)
