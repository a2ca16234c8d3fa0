"""Reading `Validated_Llama3_Explanations.xlsx`: every annotated row checked (header, item index, texts, label,
judgments), each error naming the sheet row and column (`DataFormatError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from hlv_assets.lib.nli import LETTERS
from hlv_assets.lib.preference.model import HEADER_PREFIXES, LABEL_MAP, ValidatedExplanation
from hlv_assets.lib.validation import DataFormatError

_COLUMN_LETTERS = "ABCDEFGH"
_LABEL_RE = re.compile(r"^\s*([A-Za-z]+)\s*-\s*(\d+)\s*$")


def _yes_no(value, where, row: int, column: str, dash: str = "n") -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    v = str(value).strip().lower()
    if v in ("y", "yes"):
        return True
    if v in ("n", "no") or (v == "-" and dash == "n"):
        return False
    raise DataFormatError(where, row, column, f"expected y or n, got {value!r}")


def _supported(value, where, row: int, column: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    v = str(value).strip().lower()
    if v in LETTERS or v == "-":
        return v
    raise DataFormatError(where, row, column, f"expected E, N, C or -, got {value!r}")


def _check_header(header, where: str) -> None:
    if header is None:
        raise DataFormatError(where, 1, "<header>", "empty sheet")
    header = list(header) + [None] * max(0, 8 - len(header))
    for j, prefix in enumerate(HEADER_PREFIXES):
        cell = header[j]
        if not (isinstance(cell, str) and cell.strip().startswith(prefix)):
            raise DataFormatError(
                where, 1, _COLUMN_LETTERS[j], f"expected a header starting {prefix!r}, got {cell!r}"
            )


def _parse_row(values: list, row_no: int, where: str, col: dict[str, str], label_map: dict[str, str],
               n_items: int | None, dash_in_yes_no: str) -> ValidatedExplanation:
    """One non-blank sheet row as a ValidatedExplanation; a bad cell raises DataFormatError (row, column)."""
    item, premise, hypothesis, llm_label, text, q1, q2, q3 = values[:8]
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    if isinstance(item, bool) or not isinstance(item, int) or item < 0:
        raise DataFormatError(where, row_no, col["ID"], f"expected an item index, got {item!r}")
    if n_items is not None and item >= n_items:
        raise DataFormatError(
            where, row_no, col["ID"], f"item index {item} is not in 0..{n_items - 1}"
        )
    for name, value in (
        ("Context/Premise", premise),
        ("Statement/Hypothesis", hypothesis),
        ("LLM-Explanation", text),
    ):
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(where, row_no, col[name], f"expected text, got {value!r}")
    m = _LABEL_RE.match(llm_label) if isinstance(llm_label, str) else None
    if m is None:
        raise DataFormatError(
            where, row_no, col["LLM-Label"], f"expected '<Label>-<k>', got {llm_label!r}"
        )
    label_name, position = m.group(1), int(m.group(2))
    if label_name not in label_map:
        raise DataFormatError(
            where,
            row_no,
            col["LLM-Label"],
            f"unknown label {label_name!r}: expected one of {sorted(label_map)}",
        )
    if position < 1:
        raise DataFormatError(where, row_no, col["LLM-Label"], f"bullet position {position} < 1")
    faithful = _yes_no(q1, where, row_no, col["Q1"], dash_in_yes_no)
    informative = _yes_no(q2, where, row_no, col["Q2"], dash_in_yes_no)
    supported = _supported(q3, where, row_no, col["Q3"])
    judged = [faithful is not None, informative is not None, supported is not None]
    if any(judged) and not all(judged):
        missing = [p for p, ok in zip(("Q1", "Q2", "Q3"), judged, strict=True) if not ok][0]
        raise DataFormatError(
            where, row_no, col[missing], "blank while the row's other judgments are filled"
        )
    return ValidatedExplanation(
        sheet_row=row_no,
        item=item,
        premise=premise,
        hypothesis=hypothesis,
        llm_label=llm_label.strip(),
        label_name=label_name,
        label=label_map[label_name],
        position=position,
        text=text.strip(),
        faithful=faithful,
        informative=informative,
        supported=supported,
    )


def _check_unique(out: list[ValidatedExplanation], where: str, col: dict[str, str]) -> None:
    seen: dict[tuple[int, str, int], int] = {}
    for x in out:
        key = (x.item, x.label, x.position)
        if key in seen:
            raise DataFormatError(
                where,
                x.sheet_row,
                col["LLM-Label"],
                f"item {x.item} repeats {x.llm_label} (first at row {seen[key]})",
            )
        seen[key] = x.sheet_row


def read_validated_explanations(
    path: Path | str,
    *,
    sheet: str | None = None,
    label_map: Mapping[str, str] | None = None,
    n_items: int | None = 100,
    dash_in_yes_no: str = "n",
) -> list[ValidatedExplanation]:
    """Every annotated row of the workbook, in sheet order; blank rows are skipped.

    Errors are :class:`DataFormatError` with ``path[sheet]``, the 1-based sheet row and ``"<col> <header>"``.
    `n_items`: IDs must lie in 0..n_items-1 (None: any non-negative integer). `dash_in_yes_no`: ``"n"`` reads
    a ``-`` in Q1/Q2 as no (sheet row 1636 has Q1 n, Q2 -, Q3 -), ``"error"`` rejects it.
    """
    if dash_in_yes_no not in ("n", "error"):
        raise ValueError(f"dash_in_yes_no {dash_in_yes_no!r}: expected n or error")
    import openpyxl

    label_map = dict(LABEL_MAP if label_map is None else label_map)
    path = Path(path)
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise DataFormatError(path, 0, "<sheet>", f"no sheet {sheet!r}; sheets: {wb.sheetnames}")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        where = f"{path}[{ws.title}]"
        rows = ws.iter_rows(values_only=True)
        _check_header(next(rows, None), where)
        col = {p: f"{_COLUMN_LETTERS[j]} {p}" for j, p in enumerate(HEADER_PREFIXES)}
        out: list[ValidatedExplanation] = []
        for row_no, values in enumerate(rows, start=2):
            values = list(values) + [None] * max(0, 8 - len(values))
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            out.append(_parse_row(values, row_no, where, col, label_map, n_items, dash_in_yes_no))
    finally:
        wb.close()
    _check_unique(out, where, col)
    return out
