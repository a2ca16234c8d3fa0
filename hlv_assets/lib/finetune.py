"""Soft-label fine-tuning of an encoder NLI classifier (SPEC §5) in a plain torch loop.

Recipe (the defaults of `FinetuneConfig`): items (premise, hypothesis) with a label distribution over
[E, N, C] as **soft target**; loss = cross-entropy with probability targets (``F.cross_entropy(logits,
probs)``, not BCE; with one-hot targets it is exactly the hard-label loss); batch 4, lr 2e-5, 5 epochs,
max length 128, AdamW (eps 1e-6, no weight decay), linear decay to 0 with no warm-up, gradient norm
clipped at 1.0 (the HF Trainer default the reference ran with; configurable), evaluation on ChaosNLI dev
every 20 steps, the best checkpoint by dev macro-F1 (first best kept on ties), seed 42.

Deterministic given the seed on CPU (same thread count): the seed drives the head initialisation,
dropout and the per-epoch shuffle (a dedicated generator). Batches are padded to their longest item
(dynamic padding) instead of to 128: with the attention mask this gives the same model function.

`run_finetune(config, out_dir)` does it all in-process: reads the JSONL inputs, builds the model
(`hlv_assets.lib.encoders.build_classifier`), trains, evaluates the best checkpoint on dev, test and the
ANLI rounds and, with ``out_dir``, writes

- ``checkpoint/`` (atomically: a temporary folder renamed into place): ``model.safetensors``,
  ``config.json``, tokenizer files and ``checkpoint.json`` (sha256 of model.safetensors and of the training
  data, the config, library versions). Never a pickle: no ``*.bin``, ``training_args.bin`` or optimizer state.
- ``metrics.json``: dev/test ChaosNLI metrics of the best checkpoint, ANLI per round, the training curve
  (step, dev macro-F1 ...), per-step training loss, samples/s of training and evaluation, peak memory.
- ``predictions.json``: per-item predicted probabilities [E, N, C] for dev, test and ANLI (with ``uid``
  when the input had one).

`run_zero_shot` evaluates the encoder as built (untrained or MNLI head) without training: the
"zero-shot" / MNLI-FT-LM row of the ANLI table. `hlv_assets.train_entry` is the command-line entry point.
The only run-time dependencies are torch, transformers, safetensors and numpy (no Dagster, no sklearn).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hlv_assets.lib.evaluation import anli_metrics, chaosnli_metrics, predict_logits, softmax
from hlv_assets.lib.nli import WORDS, label_index

Reporter = Callable[[dict[str, Any]], None]

FORBIDDEN_SUFFIXES = (".bin", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
SELECTION_METRICS = ("macro_f1", "weighted_f1", "accuracy", "neg_kl_published", "neg_ce_loss")


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class FinetuneConfig:
    """Everything one fine-tuning (or zero-shot evaluation) run depends on; JSON-serialisable.

    Data (JSON Lines files):
      train_path: items {premise, hypothesis, target: [pE, pN, pC]} (``label`` as a 3-list also read);
      dev_path / test_path: ChaosNLI items with soft targets (``label`` or ``target`` = [pE, pN, pC]);
      anli_paths: round name -> ANLI JSONL (``context``/``premise``, ``hypothesis``, ``label`` e/n/c).
    Model: encoder ("minilm" = embedded all-MiniLM-L6-v2, a local folder or a cached HF id); tokenizer
      (default: the encoder's); random_init (BertConfig overrides: a randomly initialised BERT instead of
      the encoder's weights); head ("auto" / "fresh" / "keep", see `encoders.build_classifier`);
      local_files_only (never download).
    Recipe: seed, batch_size, learning_rate, epochs, max_steps (overrides epochs when set), max_length,
      adam_eps, adam_betas, weight_decay, warmup_steps, max_grad_norm (None: no clipping),
      fused_optimizer (torch's fused AdamW kernel, same update rule; ~4x faster steps on CPU; falls
      back to the plain implementation where unsupported).
    Selection: eval_every (steps; 0 = only at the end), eval_at_end (also evaluate after the last step
      when it is not a multiple of eval_every), select_metric (on dev; ties keep the earlier step).
    Evaluation: eval_batch_size, sort_eval_by_length.
    Runtime: device ("auto" / "cpu" / "cuda" / "cuda:N"), bf16 (autocast to bfloat16, CUDA only and where
      supported), num_threads (torch CPU threads; None leaves torch's default), save_checkpoint,
      mode ("finetune" or "zero_shot"), run_name (free text carried into the outputs).
    """

    train_path: str | None = None
    dev_path: str | None = None
    test_path: str | None = None
    anli_paths: dict[str, str] = field(default_factory=dict)
    encoder: str = "minilm"
    tokenizer: str | None = None
    random_init: dict[str, Any] | None = None
    head: str = "auto"
    local_files_only: bool = True
    seed: int = 42
    batch_size: int = 4
    learning_rate: float = 2e-5
    epochs: int = 5
    max_steps: int | None = None
    max_length: int = 128
    adam_eps: float = 1e-6
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    fused_optimizer: bool = True
    eval_every: int = 20
    eval_at_end: bool = True
    select_metric: str = "macro_f1"
    eval_batch_size: int = 64
    sort_eval_by_length: bool = True
    device: str = "auto"
    bf16: bool = True
    num_threads: int | None = None
    save_checkpoint: bool = True
    mode: str = "finetune"
    run_name: str = ""

    def __post_init__(self) -> None:
        self.anli_paths = {str(k): str(v) for k, v in dict(self.anli_paths or {}).items()}
        self.adam_betas = [float(b) for b in self.adam_betas]
        problems = []
        if self.mode not in ("finetune", "zero_shot"):
            problems.append(f"mode must be finetune or zero_shot, not {self.mode!r}")
        if self.mode == "finetune" and not self.train_path:
            problems.append("train_path is required to fine-tune")
        if self.head not in ("auto", "fresh", "keep"):
            problems.append(f"head must be auto, fresh or keep, not {self.head!r}")
        if self.select_metric not in SELECTION_METRICS:
            problems.append(f"select_metric must be one of {SELECTION_METRICS}")
        for name in ("batch_size", "eval_batch_size", "max_length"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1")
        if self.epochs < 0 or (self.max_steps is not None and self.max_steps < 0):
            problems.append("epochs and max_steps must be >= 0")
        if self.eval_every < 0 or self.warmup_steps < 0:
            problems.append("eval_every and warmup_steps must be >= 0")
        if len(self.adam_betas) != 2:
            problems.append("adam_betas must hold two numbers")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            problems.append(f"device must be auto, cpu or cuda[:N], not {self.device!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            _atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FinetuneConfig fields: {unknown}")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike[str]) -> FinetuneConfig:
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            text = Path(path_or_text).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------------------------------
# minimal readers (file paths in, plain dicts out)
# --------------------------------------------------------------------------------------------------


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
    return _atomic_write_text(Path(path), text)


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
    ``chaos probs``, ``label_dist`` that is present; the premise from ``premise`` or ``context``.
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


# --------------------------------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def library_versions() -> dict[str, str]:
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
        from hlv_assets import __version__

        versions["hlv_assets"] = __version__
    except ImportError:  # pragma: no cover
        pass
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


def soft_cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean over the batch of −Σ target · log softmax(logits): cross-entropy with probability targets.

    ``F.cross_entropy`` with a float target of the logits' shape; one-hot targets give exactly the
    hard-label loss. Computed in float32 whatever the logits' dtype (bf16 autocast).
    """
    import torch.nn.functional as F

    return F.cross_entropy(logits.float(), targets.float())


def linear_schedule(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """LR multiplier of update ``step`` (0-based): linear warm-up, then linear decay to 0 (HF's rule)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return float(step) / float(max(1, warmup_steps))
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))

    return factor


def _selection_value(metrics: Mapping[str, Any], name: str) -> float:
    if name.startswith("neg_"):
        return -float(metrics[name[4:]])
    return float(metrics[name])


# --------------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------------


@dataclass
class EvalSets:
    dev: list[dict[str, Any]] | None
    test: list[dict[str, Any]] | None
    anli: dict[str, list[dict[str, Any]]]


def load_eval_sets(config: FinetuneConfig) -> EvalSets:
    return EvalSets(
        dev=read_soft_items(config.dev_path) if config.dev_path else None,
        test=read_soft_items(config.test_path) if config.test_path else None,
        anli={name: read_anli(path) for name, path in config.anli_paths.items()},
    )


def _data_hashes(config: FinetuneConfig) -> dict[str, str]:
    paths = {"train": config.train_path, "dev": config.dev_path, "test": config.test_path}
    paths.update({f"anli_{k}": v for k, v in config.anli_paths.items()})
    return {k: sha256_file(v) for k, v in paths.items() if v}


# --------------------------------------------------------------------------------------------------
# evaluation of a model on every set
# --------------------------------------------------------------------------------------------------


class _EvalClock:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.items = 0

    def add(self, stats: Mapping[str, Any]) -> None:
        self.seconds += float(stats["seconds"])
        self.items += int(stats["n"])

    def samples_per_s(self) -> float | None:
        return self.items / self.seconds if self.seconds > 0 else None


def _predict(
    model: Any,
    tokenizer: Any,
    items: Sequence[Mapping[str, Any]],
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: _EvalClock,
) -> np.ndarray:
    stats: dict[str, Any] = {}
    logits = predict_logits(
        model,
        tokenizer,
        [it["premise"] for it in items],
        [it["hypothesis"] for it in items],
        batch_size=config.eval_batch_size,
        max_length=config.max_length,
        device=device,
        sort_by_length=config.sort_eval_by_length,
        bf16=bf16,
        stats=stats,
    )
    clock.add(stats)
    return logits


def _soft_metrics(items: Sequence[Mapping[str, Any]], logits: np.ndarray) -> dict[str, Any]:
    return chaosnli_metrics(logits, np.asarray([it["target"] for it in items]))


def _prediction_rows(items: Sequence[Mapping[str, Any]], logits: np.ndarray) -> list[dict[str, Any]]:
    probs = softmax(logits)
    rows = []
    for i, (item, p) in enumerate(zip(items, probs, strict=True)):
        row: dict[str, Any] = {"index": i}
        if "uid" in item:
            row["uid"] = item["uid"]
        row["probs"] = [float(v) for v in p]
        rows.append(row)
    return rows


def evaluate_model(
    model: Any,
    tokenizer: Any,
    sets: EvalSets,
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: _EvalClock,
    dev_logits: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, predictions) of the model on dev, test and each ANLI round present in ``sets``."""
    metrics: dict[str, Any] = {"anli": {}}
    predictions: dict[str, Any] = {"label_order": list(WORDS), "anli": {}}
    for name, items in (("dev", sets.dev), ("test", sets.test)):
        if not items:
            continue
        logits = dev_logits if name == "dev" and dev_logits is not None else None
        if logits is None:
            logits = _predict(model, tokenizer, items, config, device, bf16, clock)
        metrics[name] = _soft_metrics(items, logits)
        predictions[name] = _prediction_rows(items, logits)
    for name, items in sets.anli.items():
        logits = _predict(model, tokenizer, items, config, device, bf16, clock)
        metrics["anli"][name] = anli_metrics(logits, [it["label"] for it in items])
        predictions["anli"][name] = _prediction_rows(items, logits)
    return metrics, predictions


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def _adamw(model: Any, config: FinetuneConfig) -> Any:
    import torch

    kwargs = dict(
        lr=config.learning_rate,
        betas=(config.adam_betas[0], config.adam_betas[1]),
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    if config.fused_optimizer:
        try:
            return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # device/dtype without a fused kernel
            pass
    return torch.optim.AdamW(model.parameters(), **kwargs)


@dataclass
class TrainResult:
    best_step: int
    total_steps: int
    curve: list[dict[str, Any]]
    losses: list[float]
    best_dev_logits: np.ndarray | None
    train_seconds: float
    train_samples: int


def train(
    model: Any,
    tokenizer: Any,
    train_items: Sequence[Mapping[str, Any]],
    dev_items: Sequence[Mapping[str, Any]] | None,
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: _EvalClock,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best weights (by dev ``select_metric``)."""
    import torch

    if not train_items:
        raise ValueError("no training items")
    enc = tokenizer(
        [it["premise"] for it in train_items],
        [it["hypothesis"] for it in train_items],
        truncation=True,
        max_length=config.max_length,
    )
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    targets = torch.tensor([it["target"] for it in train_items], dtype=torch.float32)
    n = len(train_items)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = int(config.max_steps) if config.max_steps is not None else int(config.epochs) * steps_per_epoch

    model.to(device)
    optimizer = _adamw(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(total, config.warmup_steps))
    shuffle = torch.Generator().manual_seed(int(config.seed))

    def batches():
        while True:
            order = torch.randperm(n, generator=shuffle).tolist()
            for start in range(0, n, config.batch_size):
                yield order[start : start + config.batch_size]

    curve: list[dict[str, Any]] = []
    losses: list[float] = []
    best_value = -math.inf
    best_step = 0
    best_state: dict[str, Any] | None = None
    best_dev_logits: np.ndarray | None = None
    train_seconds = 0.0
    seen = 0
    stream = batches()
    model.train()
    for step in range(1, total + 1):
        tick = time.perf_counter()
        idx = next(stream)
        batch = tokenizer.pad([{k: enc[k][i] for k in keys} for i in idx], padding=True, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**batch).logits
        loss = soft_cross_entropy(logits, targets[idx].to(device))
        loss.backward()
        if config.max_grad_norm is not None and config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds += time.perf_counter() - tick
        seen += len(idx)

        periodic = config.eval_every > 0 and step % config.eval_every == 0
        final = config.eval_at_end and step == total
        if dev_items and (periodic or final):
            dev_logits = _predict(model, tokenizer, dev_items, config, device, bf16, clock)
            dev = _soft_metrics(dev_items, dev_logits)
            value = _selection_value(dev, config.select_metric)
            window = losses[curve[-1]["step"] if curve else 0 :]
            point = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "dev_macro_f1": dev["macro_f1"],
                "dev_weighted_f1": dev["weighted_f1"],
                "dev_kl_published": dev["kl_published"],
                "dev_ce_loss": dev["ce_loss"],
                "train_loss": float(np.mean(window)) if window else None,
                "best": value > best_value,
            }
            curve.append(point)
            if value > best_value:
                best_value, best_step, best_dev_logits = value, step, dev_logits
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            model.train()
            if reporter:
                reporter({"event": "eval", "total_steps": total, **point})
        elif reporter and (step == 1 or step % 10 == 0):
            reporter({"event": "step", "step": step, "total_steps": total, "loss": losses[-1]})

    if best_state is not None and best_step != total:
        model.load_state_dict(best_state)
    if best_state is None:
        best_step = total
    model.eval()
    return TrainResult(best_step, total, curve, losses, best_dev_logits, train_seconds, seen)


# --------------------------------------------------------------------------------------------------
# checkpoint
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------


def _setup(config: FinetuneConfig) -> tuple[Any, bool]:
    import torch

    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return device, use_bf16(config, device)


def _memory(device: Any) -> dict[str, Any]:
    import torch

    memory: dict[str, Any] = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        memory["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        memory["peak_cuda_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    return memory


def _build(config: FinetuneConfig) -> tuple[Any, Any, dict[str, Any]]:
    from hlv_assets.lib.encoders import build_classifier

    set_seed(config.seed)
    return build_classifier(
        config.encoder,
        head=config.head,
        random_init=config.random_init,
        tokenizer=config.tokenizer,
        local_files_only=config.local_files_only,
    )


def _write_outputs(out_dir: Path | None, metrics: dict[str, Any], predictions: dict[str, Any]) -> None:
    if out_dir is None:
        return
    _atomic_write_text(out_dir / "predictions.json", json.dumps(predictions) + "\n")
    _atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def run_finetune(
    config: FinetuneConfig | Mapping[str, Any],
    out_dir: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Fine-tune, select the best checkpoint on dev, evaluate it; write outputs into ``out_dir``.

    Returns the metrics dict (also written to ``out_dir/metrics.json``). With ``mode="zero_shot"``
    this is `run_zero_shot`. ``reporter`` receives progress events (dicts with an ``event`` key).
    """
    if not isinstance(config, FinetuneConfig):
        config = FinetuneConfig.from_dict(config)
    if config.mode == "zero_shot":
        return run_zero_shot(config, out_dir, reporter)
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    device, bf16 = _setup(config)
    train_items = read_soft_items(config.train_path)
    sets = load_eval_sets(config)
    hashes = _data_hashes(config)
    model, tokenizer, info = _build(config)
    model.to(device)
    if reporter:
        reporter(
            {
                "event": "start",
                "mode": "finetune",
                "n_train": len(train_items),
                "device": str(device),
                "bf16": bf16,
            }
        )
    clock = _EvalClock()
    result = train(model, tokenizer, train_items, sets.dev, config, device, bf16, clock, reporter)
    training_eval_seconds, training_eval_items = clock.seconds, clock.items
    final_clock = _EvalClock()
    metrics, predictions = evaluate_model(
        model, tokenizer, sets, config, device, bf16, final_clock, dev_logits=result.best_dev_logits
    )
    clock.seconds += final_clock.seconds
    clock.items += final_clock.items
    metrics.update(
        {
            "mode": "finetune",
            "run_name": config.run_name,
            "best_step": result.best_step,
            "total_steps": result.total_steps,
            "selection_metric": config.select_metric,
            "n_train": len(train_items),
            "training_curve": result.curve,
            "train_loss": result.losses,
            "throughput": {
                "train_samples_per_s": result.train_samples / result.train_seconds
                if result.train_seconds
                else None,
                "train_seconds": result.train_seconds,
                "train_samples": result.train_samples,
                "eval_samples_per_s": clock.samples_per_s(),
                "eval_seconds": clock.seconds,
                "eval_items": clock.items,
                "eval_seconds_during_training": training_eval_seconds,
                "eval_items_during_training": training_eval_items,
                "final_eval_samples_per_s": final_clock.samples_per_s(),
            },
            "device": str(device),
            "bf16": bf16,
            "encoder": info,
            "data_sha256": hashes,
            "versions": library_versions(),
            "config": config.to_dict(),
        }
    )
    if out is not None and config.save_checkpoint:
        manifest = {
            "train_data_sha256": hashes["train"],
            "train_path": str(config.train_path),
            "n_train": len(train_items),
            "best_step": result.best_step,
            "total_steps": result.total_steps,
            "label_order": list(WORDS),
            "encoder": info,
            "config": config.to_dict(),
            "versions": metrics["versions"],
        }
        ckpt = save_checkpoint(model, tokenizer, out / "checkpoint", manifest)
        metrics["checkpoint"] = {"path": str(out / "checkpoint"), "model_sha256": ckpt["model_sha256"]}
    metrics["memory"] = _memory(device)
    metrics["wall_seconds"] = time.perf_counter() - started
    _write_outputs(out, metrics, predictions)
    if reporter:
        reporter({"event": "done", **summary(metrics)})
    return metrics


def run_zero_shot(
    config: FinetuneConfig | Mapping[str, Any],
    out_dir: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Evaluate the encoder as built (no training): untrained fresh head, or a kept MNLI head."""
    if not isinstance(config, FinetuneConfig):
        config = FinetuneConfig.from_dict(config)
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    device, bf16 = _setup(config)
    sets = load_eval_sets(config)
    model, tokenizer, info = _build(config)
    model.to(device).eval()
    if reporter:
        reporter({"event": "start", "mode": "zero_shot", "device": str(device), "bf16": bf16})
    clock = _EvalClock()
    metrics, predictions = evaluate_model(model, tokenizer, sets, config, device, bf16, clock)
    metrics.update(
        {
            "mode": "zero_shot",
            "run_name": config.run_name,
            "throughput": {
                "eval_samples_per_s": clock.samples_per_s(),
                "eval_seconds": clock.seconds,
                "eval_items": clock.items,
            },
            "device": str(device),
            "bf16": bf16,
            "encoder": info,
            "data_sha256": _data_hashes(config),
            "versions": library_versions(),
            "config": config.to_dict(),
            "memory": _memory(device),
            "wall_seconds": time.perf_counter() - started,
        }
    )
    _write_outputs(out, metrics, predictions)
    if reporter:
        reporter({"event": "done", **summary(metrics)})
    return metrics


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Flat scalars of a metrics dict (for logs and Dagster metadata)."""
    flat: dict[str, Any] = {"mode": metrics.get("mode")}
    for split in ("dev", "test"):
        for key in ("kl_published", "kl_per_item", "ce_loss", "weighted_f1", "macro_f1", "accuracy"):
            if split in metrics:
                flat[f"{split}_{key}"] = metrics[split][key]
    for name, m in metrics.get("anli", {}).items():
        flat[f"anli_{name}_weighted_f1"] = m["weighted_f1"]
        flat[f"anli_{name}_accuracy"] = m["accuracy"]
    for key in ("best_step", "total_steps", "wall_seconds"):
        if key in metrics:
            flat[key] = metrics[key]
    for key, value in metrics.get("throughput", {}).items():
        if key.endswith("samples_per_s"):
            flat[key] = value
    flat.update(metrics.get("memory", {}))
    if "checkpoint" in metrics:
        flat["model_sha256"] = metrics["checkpoint"]["model_sha256"]
    return flat
