"""The MNLI first stage as assets: `mnli_bert`, `mnli_roberta` (an asset factory, one per encoder with a base
model), from the MNLI files named by HLV_MNLI_TRAIN / HLV_MNLI_DEV; their checkpoints feed `finetune_<encoder>*`
unless the user names a checkpoint (HLV_BERT_MNLI / HLV_ROBERTA_MNLI win)."""

import json

import dagster as dg

from hlv_assets.defs.lineage import versioned
from hlv_assets.defs.resources import HLVSettings
from hlv_assets.defs.training.launch import TrainingLauncher
from hlv_assets.lib.finetune.files import atomic_write_text
from hlv_assets.lib.mnli_stage import (
    STAGE_VERSION,
    mnli_files,
    stage_configured,
    stage_dir,
    stage_recipe,
    write_stage_inputs,
)
from hlv_assets.lib.training_plan import EncoderSpec, configured_encoders


def mnli_asset(encoder: EncoderSpec) -> dg.AssetsDefinition:
    @dg.asset(name=f"mnli_{encoder.name}", group_name="training", kinds={"pytorch"}, pool="gpu",
              code_version=versioned(STAGE_VERSION))
    def mnli_stage(context: dg.AssetExecutionContext, settings: HLVSettings,
                   trainer: TrainingLauncher) -> dg.MaterializeResult:
        """The MNLI first stage of this encoder: its base model (HLV_<ENCODER>_BASE, default bert-base-uncased /
        roberta-base from the local cache) fine-tuned on HLV_MNLI_TRAIN with hard labels, the best step by
        accuracy on HLV_MNLI_DEV (the authors' mnli_train.sh, README "Soft-label fine-tuning"). Writes a
        safetensors checkpoint with checkpoint.json (weights and data sha256) that the soft-label fine-tunes of
        this encoder start from."""
        profile = settings.get()
        train, dev = mnli_files()
        run_dir = stage_dir(profile.name, encoder.name)
        paths = write_stage_inputs(run_dir / "inputs", train, dev, profile)
        source = {"train": str(train), "dev": str(dev), "sha256": paths.pop("source_sha256")}
        atomic_write_text(run_dir / "source.json", json.dumps(source, indent=2) + "\n")
        config = {**stage_recipe(profile, encoder.name), **paths}
        metrics = trainer.run(context, config, run_dir)
        ckpt = metrics.get("checkpoint") or {}
        return dg.MaterializeResult(metadata={
            "checkpoint": dg.MetadataValue.path(ckpt.get("path") or ""),
            "model_sha256": ckpt.get("model_sha256") or "",
            "train_data_sha256": metrics["data_sha256"]["train"],
            "mnli_train_sha256": source["sha256"]["train"], "mnli_dev_sha256": source["sha256"]["dev"],
            "base_encoder": str(config["encoder"]), "head": metrics["encoder"].get("head", ""),
            "n_train": int(metrics.get("n_train") or 0),
            "dev_accuracy": float(metrics.get("dev", {}).get("accuracy", float("nan"))),
            "selection": str(config["selection"]),
            "selected_step": int(metrics.get("selected_step", metrics.get("best_step", 0)) or 0),
            "total_steps": int(metrics.get("total_steps") or 0),
        })

    return mnli_stage


def mnli_assets() -> list[dg.AssetsDefinition]:
    """The stages of the encoders configured to train one (MNLI files named, no user checkpoint)."""
    return [mnli_asset(e) for e in configured_encoders() if stage_configured(e.name)]


def stage_deps(encoder: EncoderSpec) -> list[str]:
    """`mnli_<encoder>` when the encoder's fine-tunes start from the stage (so they run after it), else none."""
    return [f"mnli_{encoder.name}"] if stage_configured(encoder.name) else []
