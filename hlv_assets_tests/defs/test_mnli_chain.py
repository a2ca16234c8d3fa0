"""`hlv run` builds the MNLI stage and then a BERT fine-tune from it, with nothing from outside (tiny profile: the
stage trains a tiny random BERT on a ChaosNLI-SNLI stand-in with majority labels); a user checkpoint whose head
says LABEL_0..2 is refused in one line before anything runs.

The chain runs `hlv` in a subprocess: which training assets exist is decided when the definitions load, from
HLV_MNLI_TRAIN / HLV_MNLI_DEV, so it needs a fresh interpreter (as `hlv run` has).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hlv_assets.lib.errors import LabelMappingError
from hlv_assets.lib.finetune import sha256_file
from hlv_assets.lib.training_plan import check_start_heads
from hlv_assets_tests.lib.test_mnli_stage import write_snli_standin

UPSTREAM = ("chaosnli_mnli", "varierr_nli", "hlv_items", "chaos_dev", "chaos_test", "anli_test", "baseline_distributions")


def _hlv(env: dict, *argv: str, timeout: int = 500) -> subprocess.CompletedProcess:
    code = "import sys; from hlv_assets.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(600)
def test_hlv_run_builds_the_mnli_stage_then_a_bert_fine_tune_from_it(home, data_dir):
    train, dev = write_snli_standin(data_dir, home / "nli", 48, 16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HLV_BERT", "HLV_ROBERTA"))}
    env.update(HLV_PROFILE="tiny", HLV_HOME=str(home / "home"), DAGSTER_HOME=str(home / "home" / "dagster"),
               HLV_MNLI_TRAIN=str(train), HLV_MNLI_DEV=str(dev), HLV_DATA_DIR=str(data_dir))
    env.pop("HLV_DB_URL", None)
    done = _hlv(env, "run", *UPSTREAM, "mnli_bert", "finetune_bert_baseline", "--partition", "chaosnli")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    order = [line.split()[1] for line in done.stdout.splitlines() if line.endswith("...")]
    assert order.index("mnli_bert") < order.index("finetune_bert_baseline[chaosnli]")

    stage = home / "home" / "checkpoints" / "tiny" / "mnli" / "bert"
    manifest = json.loads((stage / "checkpoint" / "checkpoint.json").read_text())
    assert manifest["model_sha256"] == sha256_file(stage / "checkpoint" / "model.safetensors")
    assert manifest["train_data_sha256"] == sha256_file(stage / "inputs" / "mnli_train.jsonl")
    assert manifest["n_train"] == 48 and manifest["config"]["selection"] == "best-dev-accuracy"
    assert json.loads((stage / "source.json").read_text())["sha256"]["train"] == sha256_file(train)

    shown = _hlv(env, "tables", "finetune-comparison", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    (row,) = [r for r in json.loads(shown.stdout) if r["encoder"] == "BERT"]
    assert row["source"] == "chaosnli" and row["start_source"] == "mnli-stage"
    assert row["encoder_model"] == row["start_checkpoint"] == str(stage / "checkpoint")
    assert row["start_model_sha256"] == manifest["model_sha256"]
    assert (row["head"], row["head_labels_from"]) == ("keep", "config")


@pytest.mark.timeout(300)
def test_hlv_run_refuses_a_label_n_checkpoint_in_one_line(home, monkeypatch, generic_checkpoint_dir):
    # a subprocess: definitions loaded with HLV_BERT_MNLI set must not leak into this session's cached modules
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HLV_BERT", "HLV_ROBERTA", "HLV_MNLI"))}
    env.update(HLV_PROFILE="tiny", HLV_HOME=str(home / "home"), DAGSTER_HOME=str(home / "home" / "dagster"),
               HLV_BERT_MNLI=str(generic_checkpoint_dir))
    done = _hlv(env, "run", "finetune_bert_baseline", "--partition", "chaosnli", timeout=200)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and done.stdout == "" and len(err) == 1, done.stderr
    assert err[0].startswith(f"hlv: {generic_checkpoint_dir}: the labels of its classification head")
    assert "HLV_BERT_MNLI_LABELS=entailment,neutral,contradiction" in err[0]
    # a wrong order is refused in one line; with the order given the same checkpoint passes the check (its
    # training with that order: lib/test_mnli_stage.py), checked in-process without loading definitions
    monkeypatch.setenv("HLV_BERT_MNLI", str(generic_checkpoint_dir))
    monkeypatch.setenv("HLV_BERT_MNLI_LABELS", "entailment,neutral")
    with pytest.raises(LabelMappingError, match="HLV_BERT_MNLI_LABELS='entailment,neutral' is not an order"):
        check_start_heads(["finetune_bert_baseline"], "tiny")
    monkeypatch.setenv("HLV_BERT_MNLI_LABELS", "contradiction,entailment,neutral")
    check_start_heads(["finetune_bert_baseline"], "tiny")


@pytest.fixture
def generic_checkpoint_dir(tmp_path):
    from hlv_assets.lib.encoders import build_classifier, random_bert_classifier

    _, tok, _ = build_classifier("minilm", random_init={"hidden_size": 32, "num_hidden_layers": 2,
                                                        "num_attention_heads": 2, "intermediate_size": 64})
    model = random_bert_classifier(tok, {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                         "intermediate_size": 64})
    model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(tmp_path / "generic")
    tok.save_pretrained(tmp_path / "generic")
    return tmp_path / "generic"
