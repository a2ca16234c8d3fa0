"""The soft-label training loop (SPEC §5): cross-entropy with probability targets, AdamW with a linear schedule,
gradient clipping, periodic evaluation on dev and the best checkpoint by the selection metric kept in memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlv_assets.lib.finetune.config import FinetuneConfig, Reporter
from hlv_assets.lib.finetune.evaluate import EvalClock, predict, soft_metrics


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


@dataclass
class _Best:
    """The best dev evaluation so far: its selection value, step, weights (on the CPU) and dev logits."""

    value: float = -math.inf
    step: int = 0
    state: dict[str, Any] | None = None
    dev_logits: np.ndarray | None = None


def _batches(n: int, batch_size: int, shuffle: Any) -> Iterator[list[int]]:
    """Item indices batch by batch, reshuffled each epoch by the run's dedicated generator."""
    import torch

    while True:
        order = torch.randperm(n, generator=shuffle).tolist()
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _step(model: Any, tokenizer: Any, enc: Any, keys: list[str], idx: list[int], targets: Any, optimizer: Any,
          scheduler: Any, config: FinetuneConfig, device: Any, bf16: bool) -> float:
    """One optimizer update on the items `idx` (dynamic padding); returns the batch loss."""
    import torch

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
    value = float(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value


def _evaluate_step(model: Any, tokenizer: Any, dev_items: Sequence[Mapping[str, Any]], step: int,
                   steps_per_epoch: int, losses: list[float], curve: list[dict[str, Any]], best: _Best,
                   config: FinetuneConfig, device: Any, bf16: bool, clock: EvalClock) -> dict[str, Any]:
    """Evaluate on dev after `step`, append the point to `curve`, keep the weights when they are the best."""
    dev_logits = predict(model, tokenizer, dev_items, config, device, bf16, clock)
    dev = soft_metrics(dev_items, dev_logits)
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
        "best": value > best.value,
    }
    curve.append(point)
    if value > best.value:
        best.value, best.step, best.dev_logits = value, step, dev_logits
        best.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    model.train()
    return point


def train(
    model: Any,
    tokenizer: Any,
    train_items: Sequence[Mapping[str, Any]],
    dev_items: Sequence[Mapping[str, Any]] | None,
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: EvalClock,
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
    stream = _batches(n, config.batch_size, torch.Generator().manual_seed(int(config.seed)))
    curve: list[dict[str, Any]] = []
    losses: list[float] = []
    best = _Best()
    train_seconds = 0.0
    seen = 0
    model.train()
    for step in range(1, total + 1):
        tick = time.perf_counter()
        idx = next(stream)
        losses.append(_step(model, tokenizer, enc, keys, idx, targets, optimizer, scheduler, config, device, bf16))
        train_seconds += time.perf_counter() - tick
        seen += len(idx)

        periodic = config.eval_every > 0 and step % config.eval_every == 0
        final = config.eval_at_end and step == total
        if dev_items and (periodic or final):
            point = _evaluate_step(model, tokenizer, dev_items, step, steps_per_epoch, losses, curve, best, config,
                                   device, bf16, clock)
            if reporter:
                reporter({"event": "eval", "total_steps": total, **point})
        elif reporter and (step == 1 or step % 10 == 0):
            reporter({"event": "step", "step": step, "total_steps": total, "loss": losses[-1]})

    if best.state is not None and best.step != total:
        model.load_state_dict(best.state)
    best_step = total if best.state is None else best.step
    model.eval()
    return TrainResult(best_step, total, curve, losses, best.dev_logits, train_seconds, seen)
