"""Stable ids of result rows: a table prefix and a hash of (table, natural key, profile), so that a rerun of the
same computation replaces its row and `hlv tables`, the report and the audit can name it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

TABLE_PREFIXES = {
    "distribution_comparison": "dc",
    "finetune_comparison": "ft",
    "anli_ood": "ood",
    "replacement": "rp",
    "preference_selection": "ps",
    "variability": "var",
}


def make_row_id(table_name: str, natural_key: dict[str, Any], profile: str) -> str:
    """Stable, globally unique id of a result row: table prefix + hash of (table, natural key, profile)."""
    payload = json.dumps({"t": table_name, "k": natural_key, "p": profile}, sort_keys=True, default=str)
    prefix = TABLE_PREFIXES.get(table_name, table_name[:3])
    return f"{prefix}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"
