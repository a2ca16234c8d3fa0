"""The run-time environment of a fine-tune: seeds, device and bf16 choice, peak memory and the library
versions recorded with every checkpoint and metrics file."""

from __future__ import annotations

import importlib.metadata
import platform
import random
import sys
from typing import Any

import numpy as np

from hlv_assets.lib.finetune.config import FinetuneConfig


def library_versions() -> dict[str, str]:
    """Python, platform and the versions of torch, transformers, safetensors, tokenizers, numpy, hlv-assets."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "transformers", "safetensors", "tokenizers", "numpy"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    try:
        versions["hlv_assets"] = importlib.metadata.version("hlv-assets")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover  (a source tree that was never installed)
        versions["hlv_assets"] = "unknown"
    return versions


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux: ru_maxrss is in KiB; macOS: bytes)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for but CUDA is not available")
    return device


def use_bf16(config: FinetuneConfig, device: Any) -> bool:
    import torch

    return bool(config.bf16) and device.type == "cuda" and torch.cuda.is_bf16_supported()


def setup_device(config: FinetuneConfig) -> tuple[Any, bool]:
    """(device, bf16) of the run; sets torch's CPU threads and resets the CUDA peak-memory counters."""
    import torch

    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return device, use_bf16(config, device)


def peak_memory(device: Any) -> dict[str, Any]:
    import torch

    memory: dict[str, Any] = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        memory["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        memory["peak_cuda_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    return memory
