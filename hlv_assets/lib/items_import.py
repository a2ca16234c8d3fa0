"""Reading a user's own NLI items (JSON Lines or CSV) one line at a time, validating every field, and
collecting every error with its line and field, so a bad file is reported whole and nothing is half-imported.

Fields (JSONL keys or CSV columns; every optional group is given on every line or on none):

* `premise`, `hypothesis`: non-empty text (kept exactly as given).
* `id`: optional; default a stable hash of the whitespace-normalised premise and hypothesis (`i-<16 hex>`).
  Text without `|` or control characters, at most 200 characters; duplicates are errors.
* label counts: `counts` [cE, cN, cC], or `count_e`/`count_n`/`count_c`, or `labels` (any number of
  annotator labels, e/n/c or entailment/neutral/contradiction, any case; a CSV cell separates them with
  `|`, `;`, `,` or spaces). Counts are derived from labels; when both are given they must agree.
* `hjd`: [pE, pN, pC] (or `hjd_e`/`hjd_n`/`hjd_c`): finite, non-negative, summing to 1 within 1e-6.
* `explanations`: [[text, label], ...] (a CSV cell holds that JSON).

Text holds no NUL byte and no unpaired surrogate (some databases cannot store them); a JSON object gives each
key once. Adapters turn a known foreign format into these fields line by line (`ADAPTERS`: `chaosnli`).
Field checks: items_import_fields.py; the chain of a registered set: item_set_chain.py. Nothing here touches
the store or Dagster: `hlv_assets.store.item_sets` writes what `ItemReader` yields in one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hlv_assets.lib.errors import HLVError
from hlv_assets.lib.item_set_chain import (  # noqa: F401  (the chain's names, importable from here too)
    LG_MAX_LABELS,
    SET_NAME_RE,
    SOURCE_SEPARATOR,
    builtin_sources,
    hjd_frame,
    selection_frame,
    set_baselines,
    set_rules,
    source_key,
    split_source_key,
)
from hlv_assets.lib.items_import_fields import (
    ADAPTERS,
    FIELDS,
    GROUPS,
    DuplicateKeyError,
    counts_field,
    explanations_field,
    hjd_field,
    loads_strict,
    text_field,
    uid_field,
)
from hlv_assets.lib.validation import DataFormatError

__all__ = [
    "ADAPTERS",
    "FIELDS",
    "GROUPS",
    "ItemReader",
    "ItemRecord",
    "ItemsValidationError",
    "ImportSummary",
    "check_set_name",
    "default_uid",
    "detect_format",
]

#: Names the platform uses for its own item sets.
RESERVED_NAMES = frozenset({"hlv341", "all", "none", "human"})


class ItemsValidationError(HLVError, ValueError):
    """Every error found in an item file (the first `errors`, up to the cap), and how many there were."""

    def __init__(self, path: str | Path, errors: list[DataFormatError], total: int, lines: int):
        self.path, self.total, self.lines = str(path), total, lines
        self.errors = sorted(errors, key=lambda e: e.line)
        shown = "\n".join(f"  {e}" for e in self.errors)
        more = f"\n  ... and {total - len(self.errors)} more" if total > len(self.errors) else ""
        super().__init__(f"{path}: {total} error(s) on {lines} line(s); nothing was imported\n{shown}{more}")


def check_set_name(name: str) -> str:
    """An item set name is a slug: lowercase letters, digits, '-' (it becomes part of partition keys)."""
    if not isinstance(name, str) or not SET_NAME_RE.match(name):
        raise ValueError(f"item set name {name!r} is not a slug: lowercase letters, digits and '-', 1-40 "
                         "characters, starting and ending with a letter or digit")
    if name in RESERVED_NAMES:
        raise ValueError(f"item set name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
    return name


def default_uid(premise: str, hypothesis: str) -> str:
    """Stable id of an item without one: hash of premise and hypothesis with whitespace runs collapsed."""
    text = " ".join(premise.split()) + "\t" + " ".join(hypothesis.split())
    return "i-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in ("jsonl", "csv", "tsv"):
            raise ValueError(f"unknown format {fmt!r}: jsonl, csv or tsv")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    raise ValueError(f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; give --format jsonl|csv|tsv")


@dataclass
class ItemRecord:
    """One valid item, in file order (`index` from 0), with the line it came from."""

    index: int
    line: int
    uid: str
    premise: str
    hypothesis: str
    counts: list[int] | None = None
    labels: list[str] | None = None
    hjd: list[float] | None = None
    explanations: list[list[str]] = field(default_factory=list)
    id_given: bool = False

    def payload(self) -> dict:
        """What the store keeps beside uid, premise and hypothesis (empty groups left out)."""
        out: dict = {"index": self.index, "line": self.line}
        if self.id_given:
            out["id_given"] = True
        for name in ("counts", "labels", "hjd"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.explanations:
            out["explanations"] = self.explanations
        return out

    def canonical(self) -> str:
        """The content that identifies the item (not where it came from): hashed into the set's sha256."""
        return json.dumps([self.uid, self.premise, self.hypothesis, self.counts, self.labels, self.hjd,
                           self.explanations], ensure_ascii=False, separators=(",", ":"))


@dataclass
class ImportSummary:
    path: str
    format: str
    adapter: str | None
    n_items: int = 0
    has_counts: bool = False
    has_labels: bool = False
    has_hjd: bool = False
    has_explanations: bool = False
    max_label_total: int = 0
    max_explanations: int = 0
    content_sha256: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class ItemReader:
    """Iterate over the valid items of a file, one line in memory at a time; errors are collected.

    After the iteration, `errors` holds the first `max_errors` errors (each a DataFormatError with line and
    field), `n_errors` all of them, `summary()` the set's shape and content sha256; `raise_if_errors()`
    raises ItemsValidationError. Duplicate ids are not checked here (the store checks them in SQL, so
    memory does not grow with the file): report them with `add_error`.
    """

    def __init__(self, path: str | Path, fmt: str | None = None, adapter: str | None = None, *,
                 max_errors: int = 50, allow_extra_fields: bool = False):
        self.path = Path(path)
        self.format = detect_format(self.path, fmt)
        if adapter is not None and adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}; known: {', '.join(ADAPTERS)}")
        if adapter is not None and self.format != "jsonl":
            raise ValueError(f"the {adapter} adapter reads JSON Lines, not {self.format}")
        self.adapter = adapter
        self.max_errors = max_errors
        self.allow_extra_fields = allow_extra_fields or adapter is not None
        self.errors: list[DataFormatError] = []
        self.n_errors = 0
        self._last_bad_line = -1
        self._n_bad_lines = 0
        self._first: dict[str, tuple[int, bool]] = {}  # group -> (first valid line, present there)
        self._summary = ImportSummary(str(self.path), self.format, adapter)
        self._sha = hashlib.sha256()
        self._done = False

    # ---- errors --------------------------------------------------------------------------------------
    def add_error(self, error: DataFormatError) -> None:
        self.n_errors += 1
        if error.line != self._last_bad_line:  # a line's errors arrive together
            self._n_bad_lines += 1
            self._last_bad_line = error.line
        if len(self.errors) < self.max_errors:
            self.errors.append(error)

    def raise_if_errors(self) -> None:
        if self.n_errors:
            raise ItemsValidationError(self.path, self.errors, self.n_errors, self._n_bad_lines)

    def summary(self) -> ImportSummary:
        if not self._done:
            raise RuntimeError("read every item first")
        self._summary.content_sha256 = self._sha.hexdigest()
        return self._summary

    # ---- reading -------------------------------------------------------------------------------------
    def _jsonl_rows(self) -> Iterator[tuple[int, dict | None]]:
        with open(self.path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    self.add_error(DataFormatError(self.path, line_no, "<line>", f"not UTF-8 ({exc.reason})"))
                    yield line_no, None
                    continue
                if not text.strip():
                    continue
                try:
                    obj = loads_strict(text)
                except json.JSONDecodeError as exc:
                    self.add_error(DataFormatError(self.path, line_no, "<json>",
                                                   f"malformed JSON ({exc.msg} at column {exc.colno})"))
                    yield line_no, None
                    continue
                except DuplicateKeyError as exc:
                    self.add_error(DataFormatError(self.path, line_no, exc.key, f"{exc}; keep one"))
                    yield line_no, None
                    continue
                if not isinstance(obj, dict):
                    self.add_error(DataFormatError(self.path, line_no, "<json>",
                                                   f"expected an object, got {type(obj).__name__}"))
                    yield line_no, None
                    continue
                if self.adapter:
                    obj = ADAPTERS[self.adapter][0](obj)
                yield line_no, obj

    def _csv_rows(self) -> Iterator[tuple[int, dict | None]]:
        delimiter = "\t" if self.format == "tsv" else ","
        with open(self.path, "rb") as raw:
            f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(f, delimiter=delimiter)
            try:
                header = reader.fieldnames or []
            except UnicodeDecodeError as exc:
                self.add_error(DataFormatError(self.path, 1, "<header>", f"not UTF-8 ({exc.reason})"))
                return
            header = [h.strip() if h else h for h in header]
            reader.fieldnames = header
            if not header:
                return
            unknown = [h for h in header if h not in FIELDS]
            if unknown and not self.allow_extra_fields:
                self.add_error(DataFormatError(self.path, 1, unknown[0], f"unknown column(s) {unknown}; known: "
                                               f"{', '.join(FIELDS)} (or pass --allow-extra-fields)"))
            if len(set(header)) != len(header):
                dup = sorted({h for h in header if header.count(h) > 1})
                self.add_error(DataFormatError(self.path, 1, dup[0], "column given twice"))
            previous = reader.line_num
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    self.add_error(DataFormatError(self.path, previous + 1, "<line>",
                                                   f"not UTF-8 ({exc.reason}); reading stopped here"))
                    yield previous + 1, None
                    return
                except csv.Error as exc:
                    self.add_error(DataFormatError(self.path, previous + 1, "<csv>", str(exc)))
                    yield previous + 1, None
                    previous = reader.line_num
                    continue
                # the record's last physical line (exact for one-line records; blank lines are skipped)
                line_no = previous = reader.line_num
                if None in row:
                    self.add_error(DataFormatError(self.path, line_no, "<csv>",
                                                   f"{len(row[None])} more cell(s) than header columns"))
                    yield line_no, None
                    continue
                yield line_no, {k: v for k, v in row.items() if v is not None}

    def _rows(self) -> Iterator[tuple[int, dict | None]]:
        return self._jsonl_rows() if self.format == "jsonl" else self._csv_rows()

    def _field_name(self, name: str) -> str:
        """The field as the user's file names it (through an adapter: the source field)."""
        if self.adapter:
            return ADAPTERS[self.adapter][1].get(name, name)
        return name

    def _validate(self, line: int, obj: dict) -> ItemRecord | None:
        path, errors = self.path, []

        def attempt(fn, *args):
            try:
                return fn(*args)
            except DataFormatError as exc:
                if self.adapter:  # name the field of the user's file, not ours
                    head, _, rest = exc.field.partition("[")
                    message = str(exc).split(f"field {exc.field!r}: ", 1)[-1]
                    exc = DataFormatError(path, line, self._field_name(head) + (f"[{rest}" if rest else ""),
                                          message)
                errors.append(exc)
                return None

        if self.format == "jsonl" and not self.allow_extra_fields:
            unknown = [k for k in obj if k not in FIELDS]
            if unknown:
                errors.append(DataFormatError(path, line, unknown[0], f"unknown field(s) {unknown}; known: "
                                              f"{', '.join(FIELDS)} (or pass --allow-extra-fields)"))
        premise = attempt(text_field, obj.get("premise"), path, line, "premise")
        hypothesis = attempt(text_field, obj.get("hypothesis"), path, line, "hypothesis")
        uid = None
        given = obj.get("id") not in (None, "")
        if given:
            uid = attempt(uid_field, obj.get("id"), path, line)
        counts_labels = attempt(counts_field, obj, path, line)
        hjd = attempt(hjd_field, obj, path, line)
        explanations = attempt(explanations_field, obj.get("explanations"), path, line)
        if errors:
            for e in errors:
                self.add_error(e)
            return None
        counts, labels = counts_labels
        record = ItemRecord(index=self._summary.n_items, line=line,
                            uid=uid if given else default_uid(premise, hypothesis), premise=premise,
                            hypothesis=hypothesis, counts=counts, labels=labels, hjd=hjd,
                            explanations=explanations, id_given=given)
        # every optional group on every line or on none: the first valid line decides
        for group, present in (("counts", counts is not None), ("hjd", hjd is not None),
                               ("explanations", bool(explanations))):
            first_line, first_present = self._first.setdefault(group, (line, present))
            if present != first_present:
                errors.append(DataFormatError(
                    path, line, self._field_name("labels" if self.adapter else "counts/labels")
                    if group == "counts" else self._field_name(group),
                    f"{'given' if present else 'missing'}, but line {first_line} has "
                    f"{'them' if first_present else 'none'}: give {group} on every line or on none"))
        if errors:
            for e in errors:
                self.add_error(e)
            return None
        return record

    def __iter__(self) -> Iterator[ItemRecord]:
        if self._done:
            raise RuntimeError("an ItemReader reads its file once")
        s = self._summary
        for line, obj in self._rows():
            if obj is None:
                continue
            record = self._validate(line, obj)
            if record is None:
                continue
            s.n_items += 1
            s.has_counts |= record.counts is not None
            s.has_labels |= record.labels is not None
            s.has_hjd |= record.hjd is not None
            s.has_explanations |= bool(record.explanations)
            s.max_label_total = max(s.max_label_total, sum(record.counts or ()))
            s.max_explanations = max(s.max_explanations, len(record.explanations))
            self._sha.update(record.canonical().encode("utf-8") + b"\n")
            yield record
        self._done = True
        if s.n_items == 0 and not self.n_errors:
            self.add_error(DataFormatError(self.path, 0, "<file>", "no items"))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
