"""Read the published LLM generations of Chen et al. 2025 (SPEC §1-§2) from the data pack.

Two kinds of files, both under `mjd_estimator/Model-Explanation/<M>-explanations/`:

* raw generations `<M>-raw-output/<i>/<E|N|C>` (i = 0..340, the line index in
  `MJD-generator/NLI_explanations.json`): one file per (item, label the model was asked to explain).
  Llama3 files hold the whole chat-templated prompt and answer, Mixtral files
  `<s> [INST] prompt [/INST] answer</s>` (the `</s>` is missing when the generation was cut at the token
  limit), GPT4o files only the answer. :func:`strip_template` gives the answer text.
* selected explanation sets `<M>-model-explanation-main/<set file>.json` (JSON Lines, one row per item):
  premise, hypothesis and a list of [explanation, letter] pairs under a key that differs per file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from collections import Counter
from pathlib import Path

from hlv_assets.lib.nli import LETTERS, UPPER
from hlv_assets.lib.parsing import RELEASED_PARSE_OPTIONS, ParseOptions, ParseResult, parse_explanations
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.lib.selection import (
    RELEASED_SELECTION_OPTIONS,
    SET_NAMES,
    SelectionOptions,
    select_explanations,
)
from hlv_assets.lib.validation import DataFormatError

__all__ = [
    "DataFormatError",
    "EXPLANATION_KEYS",
    "MISMATCH_CATEGORIES",
    "N_ITEMS",
    "RELEASED_MODELS",
    "SET_FILES",
    "SET_NAMES",
    "classify_mismatch",
    "compare_with_released",
    "format_match_table",
    "generation_complete",
    "items_path",
    "match_table",
    "model_dir",
    "parse_released_generations",
    "raw_output_path",
    "read_items",
    "read_released_generations",
    "read_released_selection",
    "selection_path",
    "strip_template",
]

#: Platform slug -> folder name of the model in the data pack.
RELEASED_MODELS: dict[str, str] = {"llama3": "Llama3", "gpt4o": "GPT4o", "mixtral": "Mixtral"}

#: Set name -> file stem of the released selection file.
SET_FILES: dict[str, str] = {
    "lf-first": "Label-Free-first",
    "lf-longest": "Label-Free-longest",
    "varierr-lg-first": "VariErr-Label-Guided-first",
    "varierr-lg-longest": "VariErr-Label-Guided-longest",
    "mnli-lg-first": "MNLI-Label-Guided-first",
    "mnli-lg-longest": "MNLI-Label-Guided-longest",
}

#: File stems that differ from :data:`SET_FILES` for one model (the published names are kept verbatim).
_SET_FILE_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("Llama3", "mnli-lg-longest"): "MNLI-label-Guided-longest",
}

#: The keys under which a released selection file can hold its [explanation, letter] list.
EXPLANATION_KEYS: tuple[str, ...] = (
    "machine_comments",
    "machine_replaced_comments",
    "machine_generated_comments",
)

#: Number of items (lines of NLI_explanations.json), hence raw-output folders per model.
N_ITEMS = 341

_ITEMS_RELPATH = Path("mjd_estimator") / "MJD-generator" / "NLI_explanations.json"
_LLAMA3_ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>"
_LLAMA3_EOT = "<|eot_id|>"
_MIXTRAL_INST_END = "[/INST]"
_MIXTRAL_EOS = "</s>"


def _model_folder(model: str) -> str:
    """Folder name for a slug (`llama3`) or a folder name (`Llama3`)."""
    if model in RELEASED_MODELS:
        return RELEASED_MODELS[model]
    if model in RELEASED_MODELS.values():
        return model
    raise ValueError(f"unknown released model {model!r}: expected one of {sorted(RELEASED_MODELS)}")


def model_dir(data_dir: Path, model: str) -> Path:
    folder = _model_folder(model)
    return Path(data_dir) / "mjd_estimator" / "Model-Explanation" / f"{folder}-explanations"


def items_path(data_dir: Path) -> Path:
    return Path(data_dir) / _ITEMS_RELPATH


def raw_output_path(data_dir: Path, model: str, item_index: int, label: str) -> Path:
    """Path of the raw generation of `model` for item `item_index` and label letter `label` (e/n/c)."""
    folder = _model_folder(model)
    upper = UPPER[LETTERS.index(label.lower())]
    return model_dir(data_dir, folder) / f"{folder}-raw-output" / str(item_index) / upper


def selection_path(data_dir: Path, model: str, set_name: str) -> Path:
    folder = _model_folder(model)
    if set_name not in SET_FILES:
        raise ValueError(f"unknown explanation set {set_name!r}: expected one of {list(SET_NAMES)}")
    stem = _SET_FILE_EXCEPTIONS.get((folder, set_name), SET_FILES[set_name])
    return model_dir(data_dir, folder) / f"{folder}-model-explanation-main" / f"{stem}.json"


def strip_template(model: str, raw_text: str, path: str | Path = "<text>") -> str:
    """The answer part of a released raw generation, without the chat template (nothing else is changed).

    Llama3: the text after `<|start_header_id|>assistant<|end_header_id|>` up to a final `<|eot_id|>`
    (absent when the generation was cut). Mixtral: the text after `[/INST]` up to a final `</s>` (absent
    when cut). GPT4o: the text itself. The leading blank lines / space the templates leave are kept: the
    parser ignores them.
    """
    folder = _model_folder(model)
    if folder == "Llama3":
        head, sep, answer = raw_text.partition(_LLAMA3_ASSISTANT)
        if not sep:
            raise DataFormatError(
                path, 1, "assistant header", f"no {_LLAMA3_ASSISTANT!r} in a Llama3 generation"
            )
        return answer.removesuffix(_LLAMA3_EOT)
    if folder == "Mixtral":
        head, sep, answer = raw_text.partition(_MIXTRAL_INST_END)
        if not sep or not head.lstrip().startswith("<s>"):
            raise DataFormatError(
                path, 1, "[INST] template", "expected '<s> [INST] ... [/INST] answer' in a Mixtral generation"
            )
        return answer.removesuffix(_MIXTRAL_EOS)
    return raw_text


def generation_complete(model: str, raw_text: str) -> bool | None:
    """Whether a released generation ended with the end-of-turn token (not cut at the token limit).

    Llama3: ends with `<|eot_id|>`; Mixtral: ends with `</s>`; GPT4o: unknown (None), the files hold the
    answer only.
    """
    folder = _model_folder(model)
    if folder == "Llama3":
        return raw_text.endswith(_LLAMA3_EOT)
    if folder == "Mixtral":
        return raw_text.endswith(_MIXTRAL_EOS)
    return None


def read_items(data_dir: Path) -> list[dict]:
    """The 341 items of `NLI_explanations.json` (JSON Lines), checked for the fields selection needs."""
    path = items_path(data_dir)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, line_no, "<json>", f"invalid JSON: {exc.msg}") from None
            for field in ("premise", "hypothesis", "mnli labels", "varierr labels", "comments"):
                if field not in row:
                    raise DataFormatError(path, line_no, field, "missing")
            _check_pairs(row["comments"], path, line_no, "comments")
            rows.append(row)
    return rows


def read_released_generations(data_dir: Path, model: str, n_items: int | None = None) -> list[dict]:
    """Every released raw generation of `model` (slug or folder name), in (item, e, n, c) order.

    Rows: {"item_index", "label" (letter e/n/c), "raw_text" (the file, verbatim), "answer" (the template
    stripped, see :func:`strip_template`), "complete" (see :func:`generation_complete`), "path"}.
    `n_items` defaults to the number of items in NLI_explanations.json; a missing file raises
    :class:`DataFormatError`.
    """
    if n_items is None:
        n_items = sum(1 for line in open(items_path(data_dir), encoding="utf-8") if line.strip())
    rows = []
    for i in range(n_items):
        for label in LETTERS:
            path = raw_output_path(data_dir, model, i, label)
            if not path.is_file():
                raise DataFormatError(
                    path, 0, "<file>", f"missing raw generation for item {i}, label {label}"
                )
            raw_text = path.read_text(encoding="utf-8")
            rows.append(
                {
                    "item_index": i,
                    "label": label,
                    "raw_text": raw_text,
                    "answer": strip_template(model, raw_text, path),
                    "complete": generation_complete(model, raw_text),
                    "path": str(path),
                }
            )
    return rows


def _check_pairs(pairs, path, line_no: int, field: str) -> list[tuple[str, str]]:
    if not isinstance(pairs, list):
        raise DataFormatError(
            path, line_no, field, f"expected a list of [text, letter] pairs, got {type(pairs).__name__}"
        )
    out = []
    for j, pair in enumerate(pairs):
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise DataFormatError(
                path, line_no, f"{field}[{j}]", f"expected [text, letter], got {pair!r:.80}"
            )
        if pair[1] not in LETTERS:
            raise DataFormatError(path, line_no, f"{field}[{j}]", f"label {pair[1]!r} is not one of e/n/c")
        out.append((pair[0], pair[1]))
    return out


def read_released_selection(data_dir: Path, model: str, set_name: str) -> list[dict]:
    """One released selection file: rows {"item_index", "premise", "hypothesis", "key", "explanations"}.

    `explanations` is the list of (text, letter) pairs as published (texts verbatim, including any
    trailing newline); `key` is the field it was read from (one of :data:`EXPLANATION_KEYS`).
    """
    path = selection_path(data_dir, model, set_name)
    if not path.is_file():
        raise DataFormatError(path, 0, "<file>", "missing released selection file")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, line_no, "<json>", f"invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise DataFormatError(path, line_no, "<json>", "expected a JSON object")
            keys = [k for k in EXPLANATION_KEYS if k in row]
            if len(keys) != 1:
                raise DataFormatError(
                    path, line_no, "|".join(EXPLANATION_KEYS), f"expected exactly one, found {keys}"
                )
            for field in ("premise", "hypothesis"):
                if not isinstance(row.get(field), str):
                    raise DataFormatError(path, line_no, field, "missing or not a string")
            rows.append(
                {
                    "item_index": len(rows),
                    "premise": row["premise"],
                    "hypothesis": row["hypothesis"],
                    "key": keys[0],
                    "explanations": _check_pairs(row[keys[0]], path, line_no, keys[0]),
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------------------
# Reproducing the released selection files from the released raw generations


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
    folder = _model_folder(model)
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


def main(argv: list[str] | None = None) -> int:
    """`python -m hlv_assets.lib.released [DATA_DIR] [--default-parse] [--fill F] [--ties T]`: match table."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument(
        "data_dir", nargs="?", default=os.environ.get("HLV_DATA_DIR") or REPO_ROOT.parent / "shared" / "data"
    )
    ap.add_argument("--default-parse", action="store_true", help="parse every generator with DEFAULT_OPTIONS")
    ap.add_argument("--fill", choices=["first", "cycle"], help="override SelectionOptions.fill")
    ap.add_argument("--ties", choices=["first", "last"], help="override SelectionOptions.ties")
    args = ap.parse_args(argv)
    parse_options = ParseOptions() if args.default_parse else None
    overrides = {k: v for k, v in (("fill", args.fill), ("ties", args.ties)) if v}
    data_dir = Path(args.data_dir)
    rows = []
    items = read_items(data_dir)
    for slug in RELEASED_MODELS:
        parsed = parse_released_generations(data_dir, slug, parse_options)
        selection_options = dataclasses.replace(RELEASED_SELECTION_OPTIONS[slug], **overrides)
        for set_name in SET_NAMES:
            rows.append(
                compare_with_released(
                    data_dir, slug, set_name, parse_options, selection_options, parsed=parsed, items=items
                )
            )
    print(format_match_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
