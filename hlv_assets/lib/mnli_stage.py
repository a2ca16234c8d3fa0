"""The MNLI first stage (SPEC §5): fine-tune a base encoder (bert-base-uncased, roberta-base) on MNLI with hard
labels, so the BERT / RoBERTa soft-label fine-tunes start from a checkpoint the platform made itself.

Inputs are two JSON Lines files the user points to (nothing is downloaded at run time): ``HLV_MNLI_TRAIN`` and
``HLV_MNLI_DEV`` (MNLI-matched dev), in the GLUE / Hugging Face layout: one object per line with ``premise``,
``hypothesis`` and ``label`` = 0 entailment, 1 neutral, 2 contradiction (the order of HF ``nyu-mll/glue``
config ``mnli`` and of ``nyu-mll/multi_nli``), or the label as a word or letter (any case); ``idx`` / ``uid``
/ ``pairID`` become the item's uid. A row without a usable label (GLUE test rows carry -1) is refused in one
line naming file, line and field. Hard labels become one-hot targets of the one training loop
(`hlv_assets.lib.finetune`: soft cross-entropy with a one-hot target is exactly the hard-label loss).

Recipe, *our reading* of the authors' ``MJD-fine-tuning/scripts/mnli_train.sh`` + ``run.py`` (HF Trainer,
transformers 4.45.2): batch 32, lr 2e-5, 3 epochs, max length 128, transformers' AdamW (eps 1e-6, no weight
decay), linear decay to 0 without warm-up, gradient norm clipped at 1.0, seed 42, evaluation on MNLI-matched dev
by accuracy. The script evaluates every 100 steps but sets no ``--save_steps``, so checkpoints are saved every
500 steps (the default) and the Trainer records a best model only when it saves one with metrics: the weights
reloaded at the end are the best by dev accuracy **among the evaluations at multiples of 500 steps**, and the
last step (36,816 for 392,702 items) is not a candidate. We therefore evaluate every 500 steps, keep the best by
accuracy (ties keep the earlier step) and do not evaluate the final step (``eval_at_end=False``). The tiny and
demo profiles shorten the run to their ``finetune_max_steps`` / ``eval_every`` and cut dev to ``eval_items``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hlv_assets.lib.errors import NLIFileError, SettingsError
from hlv_assets.lib.finetune.files import read_jsonl, sha256_file, write_jsonl
from hlv_assets.lib.head_labels import NAME_TO_INDEX, parse_label_order, plan_head
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.profiles import Profile

ENV_TRAIN, ENV_DEV = "HLV_MNLI_TRAIN", "HLV_MNLI_DEV"
#: encoder name -> (variable naming its base checkpoint, default: an HF id read from the local cache only)
BASES = {"bert": ("HLV_BERT_BASE", "bert-base-uncased"), "roberta": ("HLV_ROBERTA_BASE", "roberta-base")}
STAGE_VERSION = "mnli-v1"
#: the authors' mnli_train.sh, with the best-model candidates the Trainer actually records (see above)
RECIPE = {"batch_size": 32, "learning_rate": 2e-5, "epochs": 3, "max_length": 128, "adam_eps": 1e-6,
          "weight_decay": 0.0, "warmup_steps": 0, "max_grad_norm": 1.0, "eval_every": 500, "eval_at_end": False,
          "selection": "best-dev-accuracy", "head": "fresh"}
TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
UID_KEYS = ("uid", "idx", "pairID", "id")


def _env(environ: Mapping[str, str] | None, name: str) -> str:
    return ((os.environ if environ is None else environ).get(name) or "").strip()


def mnli_files(environ: Mapping[str, str] | None = None) -> tuple[Path, Path] | None:
    """(train, dev) from HLV_MNLI_TRAIN / HLV_MNLI_DEV, None when neither is set; one line when only one is set
    or a path is not a file."""
    train, dev = _env(environ, ENV_TRAIN), _env(environ, ENV_DEV)
    if not train and not dev:
        return None
    if not (train and dev):
        missing = ENV_DEV if train else ENV_TRAIN
        raise SettingsError(f"{missing} is not set: the MNLI stage needs both {ENV_TRAIN} and {ENV_DEV} "
                            "(JSONL files in the GLUE/HF layout: premise, hypothesis, label)")
    for name, value in ((ENV_TRAIN, train), (ENV_DEV, dev)):
        if not Path(value).expanduser().is_file():
            raise SettingsError(f"{name}={value!r} is not a file; give an MNLI JSONL file (premise, hypothesis, "
                                "label 0/1/2 = entailment/neutral/contradiction)")
    return Path(train).expanduser().resolve(), Path(dev).expanduser().resolve()


def stage_configured(encoder: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `mnli_<encoder>` exists: an encoder with a base model, the MNLI files named, and no user checkpoint
    (HLV_<ENCODER>_MNLI wins)."""
    return (encoder in BASES and not _env(environ, f"HLV_{encoder.upper()}_MNLI")
            and mnli_files(environ) is not None)


def base_encoder(encoder: str, environ: Mapping[str, str] | None = None) -> str:
    var, default = BASES[encoder]
    return _env(environ, var) or default


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and 0 <= value <= 2:
        return value
    if isinstance(value, str) and value.strip().lower() in NAME_TO_INDEX:
        return NAME_TO_INDEX[value.strip().lower()]
    raise NLIFileError(f"{where}: field 'label': {value!r} is not 0/1/2 (entailment/neutral/contradiction, the "
                       "GLUE/HF order) or a label word; unlabelled rows (-1, GLUE test) cannot be trained on")


def read_mnli(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Items {premise, hypothesis, label (index in [E, N, C])[, uid]} of an MNLI JSONL file."""
    try:
        rows = read_jsonl(path)
    except ValueError as exc:
        raise NLIFileError(str(exc)) from None
    items = []
    for n, row in enumerate(rows, 1):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            raise NLIFileError(f"{where}: not a JSON object")
        for key in ("premise", "hypothesis"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise NLIFileError(f"{where}: field '{key}': missing or empty")
        item = {"premise": row["premise"], "hypothesis": row["hypothesis"], "label": _label(row.get("label"), where)}
        uid = next((row[k] for k in UID_KEYS if row.get(k) is not None), None)
        if uid is not None:
            item["uid"] = str(uid)
        items.append(item)
    if not items:
        raise NLIFileError(f"{path}: no items")
    return items


def _one_hot(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for it in items:
        row = {k: it[k] for k in ("uid",) if k in it}
        row.update(premise=it["premise"], hypothesis=it["hypothesis"],
                   target=[1.0 if j == it["label"] else 0.0 for j in range(3)])
        out.append(row)
    return out


def write_stage_inputs(work: Path, train: Path, dev: Path, profile: Profile) -> dict[str, Any]:
    """The training loop's files (one-hot targets) for the stage; dev cut to the profile's `eval_items`.
    Returns the FinetuneConfig paths and the sha256 of the user's files."""
    dev_items = read_mnli(dev)
    if profile.eval_items is not None:
        dev_items = dev_items[: profile.eval_items]
    return {
        "train_path": str(write_jsonl(_one_hot(read_mnli(train)), work / "mnli_train.jsonl")),
        "dev_path": str(write_jsonl(_one_hot(dev_items), work / "mnli_dev.jsonl")),
        "source_sha256": {"train": sha256_file(train), "dev": sha256_file(dev)},
    }


def stage_recipe(profile: Profile, encoder: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The FinetuneConfig fields of the stage (the authors' recipe; tiny/demo profiles shortened)."""
    config: dict[str, Any] = {**RECIPE, "seed": profile.finetune_seeds[0], "encoder": base_encoder(encoder, environ),
                              "run_name": f"mnli/{encoder}", "device": "auto"}
    if profile.finetune_max_steps is not None:
        config.update(max_steps=profile.finetune_max_steps, eval_every=profile.eval_every)
    if profile.random_models:
        config.update(encoder="minilm", random_init=dict(TINY_ENCODER))
    return config


def stage_dir(profile_name: str, encoder: str) -> Path:
    """Where `mnli_<encoder>` writes its run; the checkpoint is its `checkpoint/` folder."""
    return output_dir() / "checkpoints" / profile_name / "mnli" / encoder


def stage_checkpoint(profile_name: str, encoder: str) -> Path:
    return stage_dir(profile_name, encoder) / "checkpoint"


def labels_variable(env: str) -> str:
    """The variable holding the user's label order for the checkpoint named by `env` (HLV_BERT_MNLI_LABELS)."""
    return f"{env}_LABELS"


def label_order(env: str | None, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The user's order of the head's outputs for the checkpoint in `env`, validated (None when unset)."""
    if env is None:
        return None
    value = _env(environ, labels_variable(env))
    return parse_label_order(value, labels_variable(env)) if value else None


def start_checkpoint(encoder: str, env: str | None, profile_name: str,
                     environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(model, source) a soft-label fine-tune of `encoder` starts from. Precedence: the user's checkpoint in
    `env` (source ``user``), else the MNLI stage's checkpoint of this profile (``mnli-stage``); the embedded
    MiniLM is ``embedded``. SettingsError in one line when neither exists."""
    if env is None:
        return encoder, "embedded"
    user = _env(environ, env)
    if user:
        return user, "user"
    if stage_configured(encoder, environ):
        folder = stage_checkpoint(profile_name, encoder)
        if not (folder / "checkpoint.json").is_file():
            raise SettingsError(f"no MNLI-stage checkpoint at {folder}: materialize mnli_{encoder} first "
                                f"(hlv run mnli_{encoder}), or set {env} to a checkpoint of yours")
        return str(folder), "mnli-stage"
    raise SettingsError(f"{encoder} fine-tunes start from an MNLI-fine-tuned checkpoint: set {env} to one (path or "
                        f"HF id), or {ENV_TRAIN} and {ENV_DEV} to MNLI files to train it (mnli_{encoder})")


def check_start_head(encoder: str, env: str | None, profile_name: str,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """What a fine-tune of `encoder` does with its starting checkpoint's head, from its config alone (no weights):
    `head_labels.HeadPlan.info()`, None for the embedded encoder. Refused in one line (LabelMappingError) when
    the head's labels are not NLI words and `<env>_LABELS` gives no order; run before any training starts."""
    model, source = start_checkpoint(encoder, env, profile_name, environ)
    if source == "embedded":
        return None
    from transformers import AutoConfig

    from hlv_assets.lib.encoders import EncoderError, resolve_encoder

    try:
        config = AutoConfig.from_pretrained(resolve_encoder(model), local_files_only=True)
    except (OSError, ValueError, EncoderError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SettingsError(f"{env}={model!r}: cannot read its config locally ({reason}); give a local folder or an "
                            "HF id already in the local cache (nothing is downloaded at run time)") from None
    return plan_head(config, "auto", label_order(env, environ), name=model, setting=labels_variable(env)).info()
