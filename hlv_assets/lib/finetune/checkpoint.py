"""Writing a fine-tuned checkpoint: safetensors weights, config, tokenizer and `checkpoint.json` (hashes, config,
versions) into a folder, atomically; never a pickle-format file."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hlv_assets.lib.finetune.files import sha256_file

FORBIDDEN_SUFFIXES = (".bin", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")


def _save_pretrained(obj: Any, folder: Path) -> None:
    import inspect

    params = inspect.signature(obj.save_pretrained).parameters
    if "safe_serialization" in params:  # transformers 4.x; 5.x writes safetensors only
        obj.save_pretrained(str(folder), safe_serialization=True)
    else:
        obj.save_pretrained(str(folder))


def forbidden_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Pickle-format files (``*.bin``, ``*.pkl``, ``*.pt`` ...) anywhere under ``folder``."""
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in FORBIDDEN_SUFFIXES
    )


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    folder: str | os.PathLike[str],
    manifest: Mapping[str, Any],
) -> dict[str, Any]:
    """Write model (safetensors) + config + tokenizer + ``checkpoint.json`` into ``folder`` atomically.

    Everything is written into a temporary sibling folder which is renamed into place; an existing
    checkpoint there is replaced. Returns the ``checkpoint.json`` content.
    """
    final = Path(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    trash = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        _save_pretrained(model, tmp)
        _save_pretrained(tokenizer, tmp)
        bad = forbidden_files(tmp)
        if bad:
            raise RuntimeError(f"pickle-format files were written: {[p.name for p in bad]}")
        weights = tmp / "model.safetensors"
        if not weights.is_file():
            raise RuntimeError(
                "save_pretrained wrote no model.safetensors (sharded checkpoints are not expected)"
            )
        info = {
            "model_sha256": sha256_file(weights),
            "files": sorted(p.name for p in tmp.iterdir()),
            **manifest,
        }
        info["files"] = sorted([*info["files"], "checkpoint.json"])
        (tmp / "checkpoint.json").write_text(
            json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if final.exists():
            os.replace(final, trash)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if trash.exists():
            shutil.rmtree(trash, ignore_errors=True)
    return info
