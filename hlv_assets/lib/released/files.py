"""The released files of the data pack: where each lives, the chat templates stripped from the raw
generations, and readers of the items, the raw generations and the selected explanation sets.
"""

from __future__ import annotations

import json
from pathlib import Path

from hlv_assets.lib.nli import LETTERS, UPPER
from hlv_assets.lib.selection import (
    SET_NAMES,
)
from hlv_assets.lib.validation import DataFormatError

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


def model_folder(model: str) -> str:
    """Folder name for a slug (`llama3`) or a folder name (`Llama3`)."""
    if model in RELEASED_MODELS:
        return RELEASED_MODELS[model]
    if model in RELEASED_MODELS.values():
        return model
    raise ValueError(f"unknown released model {model!r}: expected one of {sorted(RELEASED_MODELS)}")


def model_dir(data_dir: Path, model: str) -> Path:
    folder = model_folder(model)
    return Path(data_dir) / "mjd_estimator" / "Model-Explanation" / f"{folder}-explanations"


def items_path(data_dir: Path) -> Path:
    return Path(data_dir) / _ITEMS_RELPATH


def raw_output_path(data_dir: Path, model: str, item_index: int, label: str) -> Path:
    """Path of the raw generation of `model` for item `item_index` and label letter `label` (e/n/c)."""
    folder = model_folder(model)
    upper = UPPER[LETTERS.index(label.lower())]
    return model_dir(data_dir, folder) / f"{folder}-raw-output" / str(item_index) / upper


def selection_path(data_dir: Path, model: str, set_name: str) -> Path:
    folder = model_folder(model)
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
    folder = model_folder(model)
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
    folder = model_folder(model)
    if folder == "Llama3":
        return raw_text.endswith(_LLAMA3_EOT)
    if folder == "Mixtral":
        return raw_text.endswith(_MIXTRAL_EOS)
    return None


def _json_lines(path: Path):
    """(line number, parsed value) of each non-empty line of a JSON Lines file; bad JSON names file and line."""
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, line_no, "<json>", f"invalid JSON: {exc.msg}") from None


def read_items(data_dir: Path) -> list[dict]:
    """The 341 items of `NLI_explanations.json` (JSON Lines), checked for the fields selection needs."""
    path = items_path(data_dir)
    rows = []
    for line_no, row in _json_lines(path):
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
    for line_no, row in _json_lines(path):
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
