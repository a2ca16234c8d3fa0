"""Field validation of user item files (see lib/items_import.py for the fields): each function takes one
field's value and raises DataFormatError naming file, line and field; adapters map a foreign format's line
onto these fields. Text must be storable on every database: no NUL byte, no unpaired surrogate."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from hlv_assets.lib.nli import LETTERS, LabelError, label_index
from hlv_assets.lib.validation import DataFormatError, check_label_vector

ID_MAX_CHARS = 200
_BAD_ID_CHARS = re.compile(r"[|\x00-\x1f\x7f]")
_SPLIT = re.compile(r"[|;,\s]+")

FIELDS = ("id", "premise", "hypothesis", "counts", "count_e", "count_n", "count_c", "labels", "hjd",
          "hjd_e", "hjd_n", "hjd_c", "explanations")
_COUNT_COLUMNS = ("count_e", "count_n", "count_c")
_HJD_COLUMNS = ("hjd_e", "hjd_n", "hjd_c")
#: Optional groups that must be present on every line or on none (the set's capabilities).
GROUPS = ("counts", "hjd", "explanations")


class DuplicateKeyError(ValueError):
    """A JSON object gives one key twice (JSON parsers keep the last value silently; we refuse)."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"key {key!r} given twice in one object")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def loads_strict(text: str):
    """`json.loads`, refusing duplicate keys in any object (DuplicateKeyError)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _storable(text: str, path, line, name) -> str:
    """Text every database can hold: PostgreSQL refuses NUL bytes, and no database stores half a
    surrogate pair."""
    at = text.find("\x00")
    if at >= 0:
        raise DataFormatError(path, line, name, f"contains a NUL byte (\\u0000) at character {at + 1}; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataFormatError(path, line, name, f"contains an unpaired surrogate at character {exc.start + 1} "
                              "(not valid Unicode); fix the text's encoding") from None
    return text


# ---- adapters: a foreign line -> the fields above ---------------------------------------------------------
def _chaosnli(obj: dict) -> dict:
    """ChaosNLI v1.0 (SNLI, MNLI): uid, example.premise/hypothesis, old_labels (the original annotators),
    label_dist (the 100-vote HJD). Missing pieces stay missing, so validation names them."""
    example = obj.get("example") if isinstance(obj.get("example"), dict) else {}
    out = {"id": obj.get("uid"), "premise": example.get("premise"), "hypothesis": example.get("hypothesis"),
           "labels": obj.get("old_labels"), "hjd": obj.get("label_dist")}
    return {k: v for k, v in out.items() if v is not None}


#: name -> (function, the source field each target field comes from, for error messages)
ADAPTERS: dict[str, tuple[Callable[[dict], dict], dict[str, str]]] = {
    "chaosnli": (_chaosnli, {"id": "uid", "premise": "example.premise", "hypothesis": "example.hypothesis",
                             "labels": "old_labels", "hjd": "label_dist"}),
}


# ---- field validation: each raises DataFormatError (caught and collected per field) -----------------------
def text_field(value, path, line, name) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataFormatError(path, line, name, "missing or empty")
    if not isinstance(value, str):
        raise DataFormatError(path, line, name, f"expected text, got {type(value).__name__}")
    return _storable(value, path, line, name)


def uid_field(value, path, line) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFormatError(path, line, "id", f"expected text or an integer, got {type(value).__name__}")
    uid = str(value)
    if not uid.strip() or uid != uid.strip():
        raise DataFormatError(path, line, "id", f"{uid!r}: empty or with leading/trailing whitespace")
    if len(uid) > ID_MAX_CHARS:
        raise DataFormatError(path, line, "id", f"longer than {ID_MAX_CHARS} characters")
    if _BAD_ID_CHARS.search(uid):
        raise DataFormatError(path, line, "id", f"{uid!r} contains '|' or a control character")
    return uid


def _number(value, path, line, name, *, integer: bool) -> float:
    if isinstance(value, str):
        try:
            value = int(value) if integer and re.fullmatch(r"\s*[+-]?\d+\s*", value) else float(value)
        except ValueError:
            raise DataFormatError(path, line, name, f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataFormatError(path, line, name, f"{value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataFormatError(path, line, name, f"{value} is not a finite number")
    return value


def _vector(value, path, line, name, *, integer: bool) -> list:
    """A 3-vector from a JSON list, or (CSV) from '[..]' JSON text or separated numbers."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = loads_strict(text)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, line, name, f"malformed JSON list ({exc.msg})") from None
        else:
            value = [v for v in _SPLIT.split(text) if v]
    if not isinstance(value, list) or len(value) != 3:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise DataFormatError(path, line, name, f"expected 3 numbers [E, N, C], got {got}")
    return [_number(v, path, line, name, integer=integer) for v in value]


def _columns(obj: dict, names: tuple[str, ...], path, line, name, *, integer: bool) -> list | None:
    present = [n for n in names if obj.get(n) not in (None, "")]
    if not present:
        return None
    missing = [n for n in names if n not in present]
    if missing:
        raise DataFormatError(path, line, missing[0], f"missing while {', '.join(present)} given: give all three")
    return [_number(obj[n], path, line, n, integer=integer) for n in names]


def counts_field(obj: dict, path, line) -> tuple[list[int] | None, list[str] | None]:
    counts_value = obj.get("counts")
    counts = None
    if counts_value not in (None, ""):
        if _columns(obj, _COUNT_COLUMNS, path, line, "counts", integer=True) is not None:
            raise DataFormatError(path, line, "counts", "give counts or count_e/count_n/count_c, not both")
        counts = _vector(counts_value, path, line, "counts", integer=True)
        name = "counts"
    else:
        counts = _columns(obj, _COUNT_COLUMNS, path, line, "counts", integer=True)
        name = "count_e"
    if counts is not None:
        counts = [int(c) for c in check_label_vector(counts, path, line, name, kind="counts")]
        if sum(counts) <= 0:
            raise DataFormatError(path, line, name, "no labels (all counts are 0)")
    labels = None
    raw = obj.get("labels")
    if raw not in (None, ""):
        if isinstance(raw, str):
            raw = [v for v in _SPLIT.split(raw.strip()) if v]
        if not isinstance(raw, list):
            raise DataFormatError(path, line, "labels", f"expected a list of labels, got {type(raw).__name__}")
        if not raw:
            raise DataFormatError(path, line, "labels", "empty list")
        labels = []
        for j, lab in enumerate(raw):
            try:
                labels.append(LETTERS[label_index(lab.strip().lower() if isinstance(lab, str) else lab)])
            except LabelError as exc:
                raise DataFormatError(path, line, f"labels[{j}]", str(exc)) from None
        from_labels = [labels.count(x) for x in LETTERS]
        if counts is not None and counts != from_labels:
            raise DataFormatError(path, line, "labels", f"labels give counts {from_labels} but {name} say {counts}")
        counts = from_labels
    return counts, labels


def hjd_field(obj: dict, path, line) -> list[float] | None:
    value = obj.get("hjd")
    if value not in (None, ""):
        if _columns(obj, _HJD_COLUMNS, path, line, "hjd", integer=False) is not None:
            raise DataFormatError(path, line, "hjd", "give hjd or hjd_e/hjd_n/hjd_c, not both")
        vec, name = _vector(value, path, line, "hjd", integer=False), "hjd"
    else:
        vec, name = _columns(obj, _HJD_COLUMNS, path, line, "hjd", integer=False), "hjd_e"
        if vec is None:
            return None
    return check_label_vector(vec, path, line, name, kind="distribution")  # sums to 1 within 1e-6


def explanations_field(value, path, line) -> list[list[str]]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = loads_strict(value)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, line, "explanations", f"malformed JSON ({exc.msg})") from None
        except DuplicateKeyError as exc:
            raise DataFormatError(path, line, "explanations", f"{exc}; keep one") from None
    if not isinstance(value, list):
        raise DataFormatError(path, line, "explanations", "expected a list of [text, label] pairs")
    out = []
    for j, pair in enumerate(value):
        if isinstance(pair, dict):
            pair = [pair.get("text"), pair.get("label")]
        if not isinstance(pair, list) or len(pair) != 2:
            raise DataFormatError(path, line, f"explanations[{j}]", "expected [text, label]")
        text, lab = pair
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(path, line, f"explanations[{j}][0]", "missing or empty text")
        _storable(text, path, line, f"explanations[{j}][0]")
        try:
            out.append([text, LETTERS[label_index(lab.strip().lower() if isinstance(lab, str) else lab)]])
        except LabelError as exc:
            raise DataFormatError(path, line, f"explanations[{j}][1]", str(exc)) from None
    return out
