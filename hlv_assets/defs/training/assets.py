"""Group `training`: soft-label fine-tunes per encoder (an asset factory: one asset per encoder, never a third
partition dimension), on the five baselines and on every MJD, with their metric rows."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from hlv_assets.defs.automation import judgment_condition
from hlv_assets.defs.lineage import finetune_table, lineage, versioned
from hlv_assets.defs.partitions import baseline_partitions, judgment_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.defs.training.launch import TrainingLauncher
from hlv_assets.defs.training.mnli import mnli_assets, stage_deps
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.mnli_stage import check_start_head, label_order, labels_variable, start_checkpoint
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.training_plan import (
    TRAINING_VERSION,
    EncoderSpec,
    configured_encoders,
    recipe,
    seed_rows,
    write_inputs,
)
from hlv_assets.store.results import make_row_id

EVAL_INPUTS = ("hlv_items", "chaos_dev", "chaos_test", "anli_test")


class FinetuneConfigOverrides(dg.Config):
    conversion: str = "auto"  # MJD conversion to train on: auto (normalize where it exists, as published), softmax


def _start(encoder: EncoderSpec, profile) -> tuple[EncoderSpec, dict, dict]:
    """(spec with the starting model, FinetuneConfig fields, row fields) of an encoder's fine-tunes: the user's
    checkpoint (HLV_<ENCODER>_MNLI) wins over the MNLI stage's; its head is checked (one line when its labels
    cannot be mapped) before anything trains. Only the embedded MiniLM becomes a random tiny BERT under `tiny`."""
    model, source = start_checkpoint(encoder.name, encoder.env, profile.name)
    spec = EncoderSpec(encoder.name, model, encoder.family, encoder.env)
    config: dict = recipe(profile, spec, profile.finetune_seeds[0],
                          tiny_encoder=profile.random_models and source == "embedded")
    if encoder.env is not None:
        config.update(head_labels=label_order(encoder.env), head_labels_setting=labels_variable(encoder.env))
        check_start_head(encoder.name, encoder.env, profile.name)
    start = {"start_checkpoint": model, "start_source": source}
    if source == "mnli-stage":  # the stage's weights this row starts from, as its checkpoint.json records them
        start["start_model_sha256"] = json.loads((Path(model) / "checkpoint.json").read_text())["model_sha256"]
    return spec, config, start


def _head_fields(metrics: dict, start: dict) -> dict:
    """What a row says about its classification head: `head` keep/fresh, where the label order came from, why."""
    info = metrics.get("encoder") or {}
    return {**start, "head": info.get("head"), "head_labels_from": info.get("labels_from"),
            "head_reason": info.get("head_reason")}


def _train(context, encoder: EncoderSpec, dist: pd.DataFrame, key: dict, inputs: dict, settings, results,
           trainer: TrainingLauncher, partition: str, dist_asset: str):
    profile = settings.get()
    spec, base_config, start = _start(encoder, profile)
    base = output_dir() / "checkpoints" / profile.name / encoder.name / partition.replace("|", "__").replace("/", "_")
    per_seed = []
    for seed in profile.finetune_seeds:
        run_dir = base / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        paths = write_inputs(run_dir / "inputs", inputs["hlv_items"], dist, inputs["chaos_dev"],
                             inputs["chaos_test"], inputs["anli_test"], profile)
        config = {**base_config, "seed": seed, **paths, "run_name": f"{encoder.name}/{partition}/seed{seed}"}
        metrics = trainer.run(context, config, run_dir)
        ckpt = metrics.get("checkpoint", {})
        per_seed.append({"seed": seed, "metrics": metrics,
                         "checkpoint": {"path": ckpt.get("path"), "sha256": ckpt.get("model_sha256"),
                                        "train_data_sha256": metrics["data_sha256"]["train"]}})
    ft, ood = seed_rows(per_seed, key, encoder=spec)
    ft.update(distribution_asset=dist_asset, distribution_partition=partition, n_train=len(dist))
    ood.update(distribution_asset=dist_asset, distribution_partition=partition)
    ft.update(_head_fields(per_seed[0]["metrics"], start))
    ood.update(_head_fields(per_seed[0]["metrics"], start))
    store = results.store()
    natural = {**key, "encoder": encoder.family, "encoder_model": spec.model}
    lin = lineage(context, items_sha256(dist.uid))
    for table, data in (("finetune_comparison", ft), ("anli_ood", ood)):
        store.replace_rows(table, [{"row_id": make_row_id(table, natural, profile.name),
                                    "items_sha256": items_sha256(dist.uid), "data": data}],
                           asset_key=context.asset_key.to_user_string(), partition_key=partition,
                           profile=profile.name, lineage=lin)
    m = per_seed[0]["metrics"]
    return dg.MaterializeResult(metadata={
        "encoder": spec.model, "head": ft.get("head") or "", "start_source": start["start_source"],
        "seeds": len(per_seed), "n_train": len(dist),
        "selection": ft["selection"], "precision": ft["precision"],
        "checkpoint": dg.MetadataValue.path(per_seed[0]["checkpoint"]["path"] or ""),
        "model_sha256": per_seed[0]["checkpoint"]["sha256"] or "",
        "train_data_sha256": per_seed[0]["checkpoint"]["train_data_sha256"],
        "test_kl_published": ft["test_kl_published"], "test_weighted_f1": ft["test_weighted_f1"],
        "anli": dg.MetadataValue.json({k: v for k, v in ood.items() if k.startswith("r")}),
        "table": finetune_table(ft, ood),
        "train_samples_per_s": m["throughput"].get("train_samples_per_s") or 0.0,
        "eval_samples_per_s": m["throughput"].get("eval_samples_per_s") or 0.0,
        "peak_rss_mb": float(m.get("memory", {}).get("peak_rss_mb") or 0.0),
    })


def _eval_ins():
    return {name: dg.AssetIn(name) for name in EVAL_INPUTS}


def finetune_assets(encoder: EncoderSpec) -> list[dg.AssetsDefinition]:
    common = dict(group_name="training", kinds={"pytorch"}, pool="gpu", code_version=versioned(TRAINING_VERSION),
                  automation_condition=judgment_condition(), deps=stage_deps(encoder))

    @dg.asset(name=f"finetune_{encoder.name}_baseline", partitions_def=baseline_partitions,
              ins={**_eval_ins(), "baseline_distributions": dg.AssetIn()}, **common)
    def baseline_finetune(context: dg.AssetExecutionContext, settings: HLVSettings, results: ResultStoreResource,
                          trainer: TrainingLauncher, baseline_distributions: pd.DataFrame, hlv_items: pd.DataFrame,
                          chaos_dev: pd.DataFrame, chaos_test: pd.DataFrame,
                          anli_test: pd.DataFrame) -> dg.MaterializeResult:
        """Fine-tune the encoder on one baseline distribution of the 341 items (soft targets)."""
        source = context.partition_key
        dist = baseline_distributions
        key = {"source": source, "llm": None, "explanations": None, "conversion": None}
        inputs = dict(hlv_items=hlv_items, chaos_dev=chaos_dev, chaos_test=chaos_test, anli_test=anli_test)
        return _train(context, encoder, dist, key, inputs, settings, results, trainer, source,
                      "baseline_distributions")

    @dg.asset(name=f"finetune_{encoder.name}", partitions_def=judgment_partitions,
              ins={**_eval_ins(), "mjd": dg.AssetIn()}, **common)
    def mjd_finetune(context: dg.AssetExecutionContext, config: FinetuneConfigOverrides, settings: HLVSettings,
                     results: ResultStoreResource, trainer: TrainingLauncher, mjd: pd.DataFrame,
                     hlv_items: pd.DataFrame, chaos_dev: pd.DataFrame, chaos_test: pd.DataFrame,
                     anli_test: pd.DataFrame) -> dg.MaterializeResult:
        """Fine-tune the encoder on the MJD of this partition (judge × explanation source) as soft targets.

        Partition `<judge>/<explanations>` in the CLI, logs and metadata; the UI shows Dagster's key
        `<explanations>|<judge>` (dimensions sorted by name): `human|smollm2-135m` is judge smollm2-135m
        reading the human explanations."""
        keys = context.partition_key.keys_by_dimension
        order = ("normalize", "softmax") if config.conversion == "auto" else (config.conversion,)
        conversion, dist = None, pd.DataFrame()
        for conversion in order:  # normalize where it exists (as published), else softmax
            dist = mjd[mjd.conversion == conversion].drop(columns="conversion").reset_index(drop=True)
            if not dist.empty:
                break
        if dist.empty:
            raise dg.Failure(f"the MJD of {keys['judge']}/{keys['explanations']} has no {'/'.join(order)} conversion "
                             f"(it has {sorted(mjd.conversion.unique())})")
        key = {"source": "mjd", "llm": keys["judge"], "explanations": keys["explanations"], "conversion": conversion}
        inputs = dict(hlv_items=hlv_items, chaos_dev=chaos_dev, chaos_test=chaos_test, anli_test=anli_test)
        return _train(context, encoder, dist, key, inputs, settings, results, trainer, context.partition_key,
                      f"mjd:{conversion}")

    return [baseline_finetune, mjd_finetune]


def reference_asset(encoder: EncoderSpec) -> dg.AssetsDefinition:
    @dg.asset(name=f"finetune_{encoder.name}_reference", group_name="training", kinds={"pytorch"}, pool="gpu",
              code_version=versioned(TRAINING_VERSION), ins=_eval_ins(), deps=stage_deps(encoder))
    def reference(context: dg.AssetExecutionContext, settings: HLVSettings, results: ResultStoreResource,
                  trainer: TrainingLauncher, hlv_items: pd.DataFrame, chaos_dev: pd.DataFrame,
                  chaos_test: pd.DataFrame, anli_test: pd.DataFrame) -> dg.MaterializeResult:
        """The two non-distribution rows of the ANLI table: the encoder zero-shot (untrained head) and the
        starting checkpoint without soft-label training (for MiniLM both are the fresh head)."""
        profile = settings.get()
        spec, base_config, start = _start(encoder, profile)
        store = results.store()
        rows = []
        for source, head in (("zero-shot", "fresh"), ("start-checkpoint", "auto")):
            run_dir = output_dir() / "checkpoints" / profile.name / encoder.name / source
            paths = write_inputs(run_dir / "inputs", hlv_items, hlv_items.assign(p_e=1.0, p_n=0.0, p_c=0.0)[
                ["uid", "p_e", "p_n", "p_c"]], chaos_dev, chaos_test, anli_test, profile)
            config = {**base_config, **paths, "mode": "zero_shot", "head": head, "save_checkpoint": False}
            metrics = trainer.run(context, config, run_dir)
            key = {"source": source, "llm": None, "explanations": None, "conversion": None}
            ft, ood = seed_rows([{"seed": profile.finetune_seeds[0], "metrics": metrics, "checkpoint": None}], key,
                                encoder=spec)
            ft.update(_head_fields(metrics, start))
            ood.update(_head_fields(metrics, start))
            natural = {**key, "encoder": encoder.family, "encoder_model": spec.model}
            for table, data in (("finetune_comparison", ft), ("anli_ood", ood)):
                rows.append((table, {"row_id": make_row_id(table, natural, profile.name), "items_sha256": "",
                                     "data": data}))
        lin = lineage(context, "")
        for table in ("finetune_comparison", "anli_ood"):
            store.replace_rows(table, [r for t, r in rows if t == table], asset_key=context.asset_key.to_user_string(),
                               partition_key="", profile=profile.name, lineage=lin)
        return dg.MaterializeResult(metadata={"rows": len(rows), "encoder": spec.model,
                                              "table": finetune_table(*(row["data"] for _, row in rows))})

    return reference


def _all_assets() -> list[dg.AssetsDefinition]:
    """The fine-tune assets of the configured encoders only (MiniLM always; BERT / RoBERTa once HLV_BERT_MNLI /
    HLV_ROBERTA_MNLI, or HLV_MNLI_TRAIN and HLV_MNLI_DEV for the MNLI stages `mnli_<encoder>`, are set when the
    definitions load): the UI never offers, and automation never starts, a fine-tune that must fail for lack of a
    checkpoint."""
    out = mnli_assets()
    for encoder in configured_encoders():
        out.extend(finetune_assets(encoder))
        out.append(reference_asset(encoder))
    return out


training_assets = _all_assets()
