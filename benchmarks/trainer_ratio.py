"""Our training loop against the Hugging Face `Trainer` on the same batches: the ratio of training samples/s.

Both sides start from the same initial weights (the model is built twice under the same seed), see the same
batches in the same order (the Trainer gets a sampler replaying our loop's per-epoch permutations), pad each
batch to its longest item, minimise the same soft cross-entropy with fused AdamW (lr 2e-5, eps 1e-6, no weight
decay), a linear schedule without warm-up and gradient clipping at 1.0, and read the loss every 10 steps (our
reporter; the Trainer's `logging_steps=10`). Timed from the call to its return (tokenisation and set-up
included on both sides), after a CUDA synchronisation, once both sides have run 2 untimed warm-up steps. Used by `bench_finetune.py` (CPU, MiniLM) and
`gpu_finetune.py` (CUDA, BERT-base shape); not run on its own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

LOG_EVERY = 10


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ours(build: Callable[[], tuple[Any, Any]], items: Sequence[Mapping[str, Any]], *, steps: int, batch_size: int,
          device: Any, bf16: bool, seed: int) -> dict[str, Any]:
    from hlv_assets.lib.finetune import FinetuneConfig, train
    from hlv_assets.lib.finetune.evaluate import EvalClock

    model, tok = build()
    config = FinetuneConfig(train_path="<in memory>", max_steps=steps, batch_size=batch_size, eval_every=0,
                            eval_at_end=False, device=str(device), bf16=bf16, seed=seed)
    _sync(device)
    t0 = time.perf_counter()
    result = train(model, tok, items, None, config, device, bf16, EvalClock(), reporter=lambda event: None)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"samples_per_s": result.train_samples / seconds, "seconds": seconds, "samples": result.train_samples,
            "first_loss": result.losses[0], "last_loss": result.losses[-1]}


def _hf_trainer(build: Callable[[], tuple[Any, Any]], items: Sequence[Mapping[str, Any]], *, steps: int,
                batch_size: int, device: Any, bf16: bool, seed: int) -> dict[str, Any]:
    import torch
    from transformers import Trainer, TrainingArguments

    from hlv_assets.lib.finetune import soft_cross_entropy

    class Replay(torch.utils.data.Sampler):
        """Our loop's order: a fresh permutation per epoch from one generator seeded with the run's seed."""

        def __init__(self, n: int):
            self.n, self.generator = n, torch.Generator().manual_seed(seed)

        def __len__(self) -> int:
            return self.n

        def __iter__(self):
            return iter(torch.randperm(self.n, generator=self.generator).tolist())

    class SoftTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = inputs.pop("labels")
            outputs = model(**inputs)
            loss = soft_cross_entropy(outputs.logits, targets)
            return (loss, outputs) if return_outputs else loss

        def _get_train_sampler(self, *args, **kwargs):
            return Replay(len(self.train_dataset))

    model, tok = build()
    losses: list[float] = []

    def collate(rows):
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in rows[0]]
        batch = tok.pad([{k: r[k] for k in keys} for r in rows], padding=True, return_tensors="pt")
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        return batch

    with tempfile.TemporaryDirectory(prefix="hf_trainer_") as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, learning_rate=2e-5, adam_epsilon=1e-6,
            weight_decay=0.0, lr_scheduler_type="linear", warmup_steps=0, max_steps=steps, max_grad_norm=1.0,
            optim="adamw_torch_fused", logging_steps=LOG_EVERY, save_strategy="no", eval_strategy="no",
            report_to="none", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
            use_cpu=device.type == "cpu", bf16=bf16, seed=seed,
        )
        _sync(device)
        t0 = time.perf_counter()
        enc = tok([it["premise"] for it in items], [it["hypothesis"] for it in items], truncation=True,
                  max_length=128)
        rows = [{**{k: enc[k][i] for k in enc}, "labels": list(items[i]["target"])} for i in range(len(items))]
        trainer = SoftTrainer(model=model, args=args, data_collator=collate, train_dataset=rows)
        trainer.train()
        _sync(device)
        seconds = time.perf_counter() - t0
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"samples_per_s": steps * batch_size / seconds, "seconds": seconds, "samples": steps * batch_size,
            "logged_losses": losses[:3]}


def loop_vs_trainer(build: Callable[[], tuple[Any, Any]], items: Sequence[Mapping[str, Any]], *, steps: int,
                    batch_size: int = 4, device: Any = None, bf16: bool = False, seed: int = 42,
                    repeats: int = 1) -> dict[str, Any]:
    """{ours, trainer, ratio}: training samples/s of each (best of `repeats`, alternating, ours first) and
    ours / Trainer's. `build()` returns a fresh (model, tokenizer) with the same initial weights each call."""
    import torch

    device = device or torch.device("cpu")
    kw = dict(steps=steps, batch_size=batch_size, device=device, bf16=bf16, seed=seed)
    # untimed warm-up of both (first-call costs: kernels, thread pools, lazy imports; seconds on a CPU)
    _ours(build, items, **{**kw, "steps": 2})
    _hf_trainer(build, items, **{**kw, "steps": 2})
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_ours(build, items, **kw))
        theirs.append(_hf_trainer(build, items, **kw))
    best_ours = max(ours, key=lambda r: r["samples_per_s"])
    best_theirs = max(theirs, key=lambda r: r["samples_per_s"])
    return {"steps": steps, "batch_size": batch_size, "device": str(device), "bf16": bf16, "repeats": repeats,
            "ours": best_ours, "trainer": best_theirs,
            "ratio_ours_over_trainer": best_ours["samples_per_s"] / best_theirs["samples_per_s"]}
