"""The one configuration of a fine-tuning (or zero-shot evaluation) run: data paths, model, recipe, selection,
runtime; JSON-serialisable and validated on construction."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlv_assets.lib.finetune.files import atomic_write_text

Reporter = Callable[[dict[str, Any]], None]

SELECTION_METRICS = ("macro_f1", "weighted_f1", "accuracy", "neg_kl_published", "neg_ce_loss")
#: which weights a run reports and saves: `final` (the last step's, the authors' effective procedure, SPEC §5) or
#: `best-dev-<metric>` (the best dev evaluation by that metric; `neg_` metrics: the lowest value wins)
SELECTIONS = ("final", *(f"best-dev-{m.removeprefix('neg_').replace('_', '-')}" for m in SELECTION_METRICS))


def selection_metric(selection: str) -> str | None:
    """The dev metric a `best-dev-*` selection maximises (a SELECTION_METRICS name); None for `final`."""
    if selection == "final":
        return None
    return SELECTION_METRICS[SELECTIONS.index(selection) - 1]


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
      head_labels (the names of the checkpoint head's outputs 0, 1, 2 when its config does not name them)
      and head_labels_setting (where the user sets them, named in a refusal); local_files_only (never download).
    Recipe: seed, batch_size, learning_rate, epochs, max_steps (overrides epochs when set), max_length,
      adam_eps, adam_betas, weight_decay, warmup_steps, max_grad_norm (None: no clipping),
      fused_optimizer (torch's fused AdamW kernel, same update rule; ~4x faster steps on CPU; falls
      back to the plain implementation where unsupported).
    Selection: selection (`final`: the weights after the last step are reported and saved, as the authors'
      runs effectively did; `best-dev-macro-f1` etc.: the best dev evaluation by that metric, ties keep the
      earlier step), eval_every (dev evaluations during training, logged in the curve; steps, 0 = none),
      eval_at_end (also evaluate after the last step when it is not a multiple of eval_every).
    Evaluation: eval_batch_size, sort_eval_by_length.
    Runtime: device ("auto" / "cpu" / "cuda" / "cuda:N"), bf16 (opt-in autocast to bfloat16, CUDA only and
      where supported; default fp32 as the authors trained), num_threads (torch CPU threads; None leaves torch's default), save_checkpoint,
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
    head_labels: list[str] | None = None
    head_labels_setting: str = "head_labels"
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
    selection: str = "final"
    eval_batch_size: int = 64
    sort_eval_by_length: bool = True
    device: str = "auto"
    bf16: bool = False
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
        if self.selection not in SELECTIONS:
            problems.append(f"selection must be one of {', '.join(SELECTIONS)}, not {self.selection!r}")
        elif self.mode == "finetune" and self.selection != "final" and not (
                self.dev_path and (self.eval_every > 0 or self.eval_at_end)):
            problems.append(f"selection {self.selection} needs dev evaluations: a dev_path and eval_every > 0 or "
                            "eval_at_end")
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
            atomic_write_text(Path(path), text + "\n")
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
