"""Where things are: the repository root, the data pack, the output folder."""

from __future__ import annotations

import os
from pathlib import Path

from hlv_assets.lib import settings

REPO_ROOT = settings.REPO_ROOT


def output_dir() -> Path:
    """Outputs (database, models, checkpoints, reports): `HLV_HOME`, else `data/` in the repository."""
    return settings.home()


def models_dir() -> Path:
    """Converted models: `HLV_MODELS_DIR`, else `<output_dir>/models` (kept across runs: converted once)."""
    return Path(os.environ.get("HLV_MODELS_DIR") or output_dir() / "models")
