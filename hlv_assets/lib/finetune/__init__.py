"""Soft-label fine-tuning of an encoder NLI classifier (SPEC §5) in a plain torch loop.

Recipe (the defaults of `FinetuneConfig`): items (premise, hypothesis) with a label distribution over
[E, N, C] as **soft target**; loss = cross-entropy with probability targets (``F.cross_entropy(logits,
probs)``, not BCE; with one-hot targets it is exactly the hard-label loss); batch 4, lr 2e-5, 5 epochs,
max length 128, AdamW (eps 1e-6, no weight decay), linear decay to 0 with no warm-up, gradient norm
clipped at 1.0 (the HF Trainer default the reference ran with; configurable), evaluation on ChaosNLI dev
every 20 steps (logged), seed 42, fp32 (bf16 autocast opt-in). ``selection`` names the weights reported and
saved: ``final`` (default: the last step's, what the authors' runs effectively reported, SPEC §5) or
``best-dev-<metric>`` (the best dev evaluation, first best kept on ties). On CUDA the loop never syncs per step:
losses stay on the device until a log or evaluation point.

Deterministic given the seed on CPU (same thread count): the seed drives the head initialisation,
dropout and the per-epoch shuffle (a dedicated generator). Batches are padded to their longest item
(dynamic padding) instead of to 128: with the attention mask this gives the same model function.

`run_finetune(config, out_dir)` does it all in-process: reads the JSONL inputs, builds the model
(`hlv_assets.lib.encoders.build_classifier`), trains, evaluates the selected weights on dev, test and the
ANLI rounds and, with ``out_dir``, writes

- ``checkpoint/`` (atomically: a temporary folder renamed into place): ``model.safetensors``,
  ``config.json``, tokenizer files and ``checkpoint.json`` (sha256 of model.safetensors and of the training
  data, the config, library versions). Never a pickle: no ``*.bin``, ``training_args.bin`` or optimizer state.
- ``metrics.json``: dev/test ChaosNLI metrics of the selected weights (with the ChaosNLI scorer's ``jsd`` and,
  given majority labels, ``majority_accuracy``), ``selection``, ``seed``, ``precision``, ANLI per round, the curve
  (step, dev macro-F1 ...), per-step training loss, samples/s of training and evaluation, peak memory.
- ``predictions.json``: per-item predicted probabilities [E, N, C] for dev, test and ANLI (with ``uid``
  when the input had one).

`run_zero_shot` evaluates the encoder as built (untrained or MNLI head) without training: the
"zero-shot" / MNLI-FT-LM row of the ANLI table. `hlv_assets.lib.train_entry` is the command-line entry point.
The only run-time dependencies are torch, transformers, safetensors and numpy (no Dagster, no sklearn).

Modules: `config` (FinetuneConfig), `files` (JSONL readers and writer, hashes), `runtime` (seed, device,
memory, versions), `training` (loss, schedule, the loop), `evaluate` (metrics and predictions on every set),
`checkpoint` (safetensors checkpoint, atomically), `runs` (run_finetune, run_zero_shot, summary).
"""

from hlv_assets.lib.finetune.checkpoint import FORBIDDEN_SUFFIXES, forbidden_files, save_checkpoint
from hlv_assets.lib.finetune.config import SELECTION_METRICS, SELECTIONS, FinetuneConfig, Reporter
from hlv_assets.lib.finetune.evaluate import EvalSets, data_hashes, evaluate_model, load_eval_sets
from hlv_assets.lib.finetune.files import (
    atomic_write_text,
    read_anli,
    read_jsonl,
    read_nli_explanations,
    read_soft_items,
    sha256_file,
    write_jsonl,
)
from hlv_assets.lib.finetune.runs import build_model, run_finetune, run_zero_shot, summary
from hlv_assets.lib.finetune.runtime import (
    library_versions,
    peak_rss_mb,
    resolve_device,
    set_seed,
    use_bf16,
)
from hlv_assets.lib.finetune.training import TrainResult, linear_schedule, soft_cross_entropy, train

__all__ = [
    "FORBIDDEN_SUFFIXES",
    "SELECTIONS",
    "SELECTION_METRICS",
    "EvalSets",
    "FinetuneConfig",
    "Reporter",
    "TrainResult",
    "atomic_write_text",
    "build_model",
    "data_hashes",
    "evaluate_model",
    "forbidden_files",
    "library_versions",
    "linear_schedule",
    "load_eval_sets",
    "peak_rss_mb",
    "read_anli",
    "read_jsonl",
    "read_nli_explanations",
    "read_soft_items",
    "resolve_device",
    "run_finetune",
    "run_zero_shot",
    "save_checkpoint",
    "set_seed",
    "sha256_file",
    "soft_cross_entropy",
    "summary",
    "train",
    "use_bf16",
    "write_jsonl",
]
