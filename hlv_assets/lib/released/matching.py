"""Reproducing the released selection files from the released raw generations: parse, select, compare item by
item, classify each mismatch, and the match table (`python -m hlv_assets.lib.released` prints it).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hlv_assets.lib.nli import LETTERS
from hlv_assets.lib.parsing import RELEASED_PARSE_OPTIONS, ParseOptions, ParseResult, parse_explanations
from hlv_assets.lib.released.files import (
    RELEASED_MODELS,
    model_folder,
    read_items,
    read_released_generations,
    read_released_selection,
    selection_path,
)
from hlv_assets.lib.selection import (
    RELEASED_SELECTION_OPTIONS,
    SET_NAMES,
    SelectionOptions,
    select_explanations,
)
from hlv_assets.lib.validation import DataFormatError


def parse_released_generations(
    data_dir: Path, model: str, options: ParseOptions | None = None
) -> list[dict[str, ParseResult]]:
    """Parse every released raw generation of `model`: one dict per item, label letter -> ParseResult.

    `options` defaults to the published convention of that generator (RELEASED_PARSE_OPTIONS).
    """
    slug = _slug(model)
    options = options or RELEASED_PARSE_OPTIONS[slug]
    rows = read_released_generations(data_dir, slug)
    out: list[dict] = [{} for _ in range(1 + max(r["item_index"] for r in rows))]
    for r in rows:
        complete = r["complete"] if r["complete"] is not None else True
        out[r["item_index"]][r["label"]] = parse_explanations(r["answer"], options, complete=complete)
    return out


def _slug(model: str) -> str:
    folder = model_folder(model)
    return next(slug for slug, name in RELEASED_MODELS.items() if name == folder)


MISMATCH_CATEGORIES: dict[str, str] = {
    "whitespace": "same texts once surrounding whitespace is stripped",
    "whitespace in length": "the released texts are in our parse up to surrounding whitespace, but counting "
    "that whitespace changes which are longest",
    "padding": "same texts, different repetition (how a label with fewer than k explanations is padded)",
    "length tie": "the differing picks have the same lengths (tie-breaking among equally long explanations)",
    "list marker kept": "a released text keeps its list marker or number, which our parse strips",
    "not in our parse": "a released text is not among our parsed explanations (parser difference)",
    "selection": "every released text is in our parse but different ones were picked",
}


def classify_mismatch(ours, released, parsed: dict[str, list[str]]) -> str:
    """The cause of one item's mismatch (a key of :data:`MISMATCH_CATEGORIES`).

    ours, released: the (text, letter) pairs; parsed: label letter -> our parsed explanations.
    """
    ours_c, rel_c = Counter(map(tuple, ours)), Counter(map(tuple, released))
    if Counter((t.strip(), lab) for t, lab in ours_c.elements()) == Counter(
        (t.strip(), lab) for t, lab in rel_c.elements()
    ):
        return "whitespace"
    if set(ours_c) == set(rel_c):
        return "padding"
    ours_only, rel_only = list((ours_c - rel_c).elements()), list((rel_c - ours_c).elements())
    whitespace_only = False
    for text, lab in rel_only:
        candidates = parsed.get(lab, [])
        if text in candidates:
            continue
        if text.strip() in {c.strip() for c in candidates}:
            whitespace_only = True
            continue
        unmarked = re.sub(r"^\s*(\d+[.)]|[*\-])\s+", "", text)
        if unmarked != text and unmarked.strip() in {c.strip() for c in candidates}:
            return "list marker kept"
        return "not in our parse"
    if whitespace_only:
        return "whitespace in length"
    lengths = {
        lab: (
            sorted(len(t) for t, x in ours_only if x == lab),
            sorted(len(t) for t, x in rel_only if x == lab),
        )
        for lab in LETTERS
    }
    if all(a == b for a, b in lengths.values()):
        return "length tie"
    return "selection"


def compare_with_released(
    data_dir: Path,
    model: str,
    set_name: str,
    parse_options: ParseOptions | None = None,
    selection_options: SelectionOptions | None = None,
    *,
    parsed: list[dict] | None = None,
    items: list[dict] | None = None,
) -> dict:
    """Parse the released raw generations, select `set_name`, and compare item by item with the released file.

    An item matches when the multiset of (text, letter) pairs is identical (texts compared verbatim).
    Returns {"model", "set", "n_items", "n_match", "rate", "n_ordered_match", "n_parse_failed",
    "mismatches": [{"item_index", "category", "ours_only", "released_only"}]}. `parsed` / `items` may be
    passed to reuse work across sets.
    """
    slug = _slug(model)
    selection_options = selection_options or RELEASED_SELECTION_OPTIONS[slug]
    parsed = parsed if parsed is not None else parse_released_generations(data_dir, slug, parse_options)
    items = items if items is not None else read_items(data_dir)
    released = read_released_selection(data_dir, slug, set_name)
    if len(released) != len(items) or len(parsed) != len(items):
        raise DataFormatError(
            selection_path(data_dir, slug, set_name),
            0,
            "<rows>",
            f"{len(released)} rows for {len(items)} items",
        )
    n_match = n_ordered = 0
    mismatches = []
    for i, (item, row) in enumerate(zip(items, released, strict=True)):
        texts = {lab: res.explanations for lab, res in parsed[i].items()}
        ours = select_explanations(
            texts,
            set_name,
            human_labels=[c[1] for c in item["comments"]],
            varierr_counts=item["varierr labels"],
            mnli_counts=item["mnli labels"][1],
            options=selection_options,
        )
        rel = row["explanations"]
        if Counter(ours) == Counter(rel):
            n_match += 1
            n_ordered += ours == rel
            continue
        mismatches.append(
            {
                "item_index": i,
                "category": classify_mismatch(ours, rel, texts),
                "ours_only": list((Counter(ours) - Counter(rel)).elements()),
                "released_only": list((Counter(rel) - Counter(ours)).elements()),
            }
        )
    return {
        "model": slug,
        "set": set_name,
        "n_items": len(items),
        "n_match": n_match,
        "rate": n_match / len(items),
        "n_ordered_match": n_ordered,
        "n_parse_failed": sum(not res.ok for p in parsed for res in p.values()),
        "mismatches": mismatches,
    }


def match_table(
    data_dir: Path,
    parse_options: ParseOptions | None = None,
    selection_options: SelectionOptions | None = None,
) -> list[dict]:
    """:func:`compare_with_released` for the 18 released files (3 generators x 6 sets)."""
    items = read_items(data_dir)
    out = []
    for slug in RELEASED_MODELS:
        parsed = parse_released_generations(data_dir, slug, parse_options)
        for set_name in SET_NAMES:
            out.append(
                compare_with_released(
                    data_dir, slug, set_name, parse_options, selection_options, parsed=parsed, items=items
                )
            )
    return out


def format_match_table(rows: list[dict]) -> str:
    """Per-file match rate and mismatch categories, as a markdown table followed by the mismatches."""
    lines = ["| model | set | match | % | ordered % | mismatch categories |", "|---|---|---|---|---|---|"]
    total = Counter()
    for r in rows:
        cats = Counter(m["category"] for m in r["mismatches"])
        total.update(cats)
        cat_text = ", ".join(f"{c}: {n}" for c, n in sorted(cats.items())) or "-"
        lines.append(
            f"| {r['model']} | {r['set']} | {r['n_match']}/{r['n_items']} | {100 * r['rate']:.2f} "
            f"| {100 * r['n_ordered_match'] / r['n_items']:.2f} | {cat_text} |"
        )
    lines.append("")
    lines.append("categories: " + (", ".join(f"{c}: {n}" for c, n in sorted(total.items())) or "none"))
    for r in rows:
        for m in r["mismatches"]:
            lines.append(
                f"- {r['model']} {r['set']} item {m['item_index']} [{m['category']}]: "
                f"ours {[(t[:60], lab) for t, lab in m['ours_only']]} "
                f"released {[(t[:60], lab) for t, lab in m['released_only']]}"
            )
    return "\n".join(lines)
