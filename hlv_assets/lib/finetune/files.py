"""Files of a fine-tuning run: JSON Lines readers (soft-target items, ANLI items) and writer, atomic writes
and file hashes. Plain dicts in and out; every bad row names its file and row."""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hlv_assets.lib.nli import label_index


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
    return rows


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    text = "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(Path(path), text)


def _distribution(value: Any, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{where}: a target must be a list [pE, pN, pC]")
    p = [float(v) for v in value]
    if any(not math.isfinite(v) or v < 0 for v in p) or abs(sum(p) - 1.0) > 1e-3:
        raise ValueError(f"{where}: {p} is not a probability distribution")
    return p


def read_soft_items(path: str | os.PathLike[str], target_key: str | None = None) -> list[dict[str, Any]]:
    """Items {premise, hypothesis, target[, uid]} from JSONL with a soft target.

    The target is read from ``target_key`` if given, else the first of ``target``, ``label``,
    ``chaos probs``, ``label_dist`` that is present; the premise from ``premise`` or ``context``. An optional
    ``majority_label`` (e/n/c or the word: ChaosNLI's majority of the 100 votes) becomes ``majority`` (its index).
    """
    items = []
    for n, row in enumerate(read_jsonl(path)):
        where = f"{path} row {n}"
        keys = [target_key] if target_key else ["target", "label", "chaos probs", "label_dist"]
        key = next((k for k in keys if k in row), None)
        if key is None:
            raise ValueError(f"{where}: no target among {keys}")
        premise = row.get("premise", row.get("context"))
        if premise is None or "hypothesis" not in row:
            raise ValueError(f"{where}: premise/context and hypothesis are required")
        item = {
            "premise": str(premise),
            "hypothesis": str(row["hypothesis"]),
            "target": _distribution(row[key], where),
        }
        if row.get("uid") is not None:
            item["uid"] = str(row["uid"])
        if row.get("majority_label") is not None:
            try:
                item["majority"] = label_index(str(row["majority_label"]))
            except ValueError as exc:
                raise ValueError(f"{where}: majority_label: {exc}") from None
        items.append(item)
    return items


def read_anli(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """ANLI items {premise, hypothesis, label (index in [E, N, C])[, uid]}."""
    items = []
    for n, row in enumerate(read_jsonl(path)):
        premise = row.get("premise", row.get("context"))
        if premise is None or "hypothesis" not in row or "label" not in row:
            raise ValueError(f"{path} row {n}: context/premise, hypothesis and label are required")
        label = row["label"]
        index = int(label) if isinstance(label, int) else label_index(str(label))
        item = {"premise": str(premise), "hypothesis": str(row["hypothesis"]), "label": index}
        if row.get("uid") is not None:
            item["uid"] = str(row["uid"])
        items.append(item)
    return items


def read_nli_explanations(
    path: str | os.PathLike[str], target_key: str = "chaos probs"
) -> list[dict[str, Any]]:
    """The 341 items of ``NLI_explanations.json`` as training items (default target: the ChaosNLI HJD)."""
    return read_soft_items(path, target_key=target_key)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
