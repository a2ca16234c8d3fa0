"""The soft-label training loop (SPEC §5): cross-entropy with probability targets, AdamW with a linear schedule,
gradient clipping, periodic evaluation on dev (logged), and the reported weights chosen by `config.selection`: the
final step's (default, as the authors' runs) or the best dev evaluation's, kept in memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlv_assets.lib.finetune.config import FinetuneConfig, Reporter, selection_metric
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
    """`selected_step`: the step whose weights the model holds on return (`total_steps` under `final`);
    `selected_dev_logits`: that model's dev logits when a dev evaluation at that step was made, else None."""

    selected_step: int
    total_steps: int
    curve: list[dict[str, Any]]
    losses: list[float]
    selected_dev_logits: np.ndarray | None
    train_seconds: float
    train_samples: int


@dataclass
class _Best:
    """The best dev evaluation so far (`best-dev-*` selections): its value, step, weights (on the CPU) and dev
    logits."""

    value: float = -math.inf
    step: int = 0
    state: dict[str, Any] | None = None
    dev_logits: np.ndarray | None = None


class _LossLog:
    """Per-step losses kept on the device and read back only when asked (a log or evaluation point): on CUDA
    the loop never waits for the GPU between steps. The values read are the float32 losses, as `float(loss)`."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._pending: list[Any] = []

    def add(self, loss: Any) -> None:
        self._pending.append(loss.detach())

    def read(self) -> list[float]:
        """Every loss so far (one host sync for all the pending ones)."""
        if self._pending:
            import torch

            self.values.extend(torch.stack(self._pending).float().cpu().tolist())
            self._pending = []
        return self.values


def _batches(n: int, batch_size: int, shuffle: Any) -> Iterator[list[int]]:
    """Item indices batch by batch, reshuffled each epoch by the run's dedicated generator."""
    import torch

    while True:
        order = torch.randperm(n, generator=shuffle).tolist()
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _step(model: Any, tokenizer: Any, enc: Any, keys: list[str], idx: list[int], targets: Any, optimizer: Any,
          scheduler: Any, config: FinetuneConfig, device: Any, bf16: bool) -> Any:
    """One optimizer update on the items `idx` (dynamic padding); returns the batch loss as a tensor on the
    device (no host sync)."""
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
    return loss


def _evaluate_step(model: Any, tokenizer: Any, dev_items: Sequence[Mapping[str, Any]], step: int, total: int,
                   steps_per_epoch: int, losses: list[float], curve: list[dict[str, Any]], best: _Best,
                   config: FinetuneConfig, device: Any, bf16: bool, clock: EvalClock) -> dict[str, Any]:
    """Evaluate on dev after `step` and append the point to `curve`; under a `best-dev-*` selection keep the
    weights when they are the best so far, under `final` keep the last step's dev logits (reused for the
    report)."""
    dev_logits = predict(model, tokenizer, dev_items, config, device, bf16, clock)
    dev = soft_metrics(dev_items, dev_logits)
    window = losses[curve[-1]["step"] if curve else 0 :]
    point = {
        "step": step,
        "epoch": step / steps_per_epoch,
        "dev_macro_f1": dev["macro_f1"],
        "dev_weighted_f1": dev["weighted_f1"],
        "dev_accuracy": dev["accuracy"],
        "dev_kl_published": dev["kl_published"],
        "dev_ce_loss": dev["ce_loss"],
        "train_loss": float(np.mean(window)) if window else None,
    }
    metric = selection_metric(config.selection)
    if metric is not None:
        value = _selection_value(dev, metric)
        point["best"] = value > best.value
        if value > best.value:
            best.value, best.step, best.dev_logits = value, step, dev_logits
            best.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    elif step == total:
        best.step, best.dev_logits = step, dev_logits
    curve.append(point)
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
    """Train ``model`` in place; on return it holds the weights ``config.selection`` names: the last step's
    (`final`) or the best dev evaluation's (`best-dev-<metric>`). Losses are read from the device only at
    evaluation and log points (every 10 steps with a reporter) and at the end."""
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
    losses = _LossLog()
    best = _Best()
    train_seconds = 0.0
    seen = 0
    model.train()
    tick = time.perf_counter()
    for step in range(1, total + 1):
        idx = next(stream)
        losses.add(_step(model, tokenizer, enc, keys, idx, targets, optimizer, scheduler, config, device, bf16))
        seen += len(idx)
        evaluate = bool(dev_items) and ((config.eval_every > 0 and step % config.eval_every == 0)
                                        or (config.eval_at_end and step == total))
        log = reporter is not None and (step == 1 or step % 10 == 0)
        if not (evaluate or log or step == total):
            continue
        values = losses.read()  # the only host sync of the training steps
        train_seconds += time.perf_counter() - tick
        if evaluate:
            point = _evaluate_step(model, tokenizer, dev_items, step, total, steps_per_epoch, values, curve, best,
                                   config, device, bf16, clock)
            if reporter:
                reporter({"event": "eval", "total_steps": total, **point})
        elif log and reporter:
            reporter({"event": "step", "step": step, "total_steps": total, "loss": values[-1]})
        tick = time.perf_counter()

    if best.state is not None and best.step != total:
        model.load_state_dict(best.state)
    selected = best.step if best.state is not None else total
    for point in curve:
        point["selected"] = point["step"] == selected
    model.eval()
    return TrainResult(selected, total, curve, losses.read(), best.dev_logits if best.step == selected else None,
                       train_seconds, seen)
