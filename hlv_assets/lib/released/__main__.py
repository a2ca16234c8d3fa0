"""`python -m hlv_assets.lib.released [DATA_DIR] [--default-parse] [--fill F] [--ties T]`: how well each
released selection file is reproduced from the released raw generations (the match table and every mismatch)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from hlv_assets.lib.parsing import ParseOptions
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.lib.released.files import RELEASED_MODELS, read_items
from hlv_assets.lib.released.matching import (
    compare_with_released,
    format_match_table,
    parse_released_generations,
)
from hlv_assets.lib.selection import RELEASED_SELECTION_OPTIONS, SET_NAMES


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
