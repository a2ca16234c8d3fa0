"""The MNLI first stage (lib side) and the explicit label mapping of a checkpoint's classification head.

Stand-in MNLI data: ChaosNLI-SNLI items (data pack) with their 100-vote majority label written in the GLUE/HF
layout (label int 0/1/2 = entailment/neutral/contradiction). Tiny random BERTs and a few steps keep every run
to seconds on two CPU cores; one run uses the embedded MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hlv_assets.lib import finetune as ft
from hlv_assets.lib import mnli_stage
from hlv_assets.lib.encoders import build_classifier, random_bert_classifier
from hlv_assets.lib.errors import HLVError, LabelMappingError, NLIFileError, SettingsError
from hlv_assets.lib.head_labels import parse_label_order, plan_head
from hlv_assets.lib.profiles import PROFILES

SNLI = "chaosnli/chaosNLI_v1.0/chaosNLI_snli.jsonl"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
GLUE = {"e": 0, "n": 1, "c": 2}


def write_snli_standin(data_dir: Path, folder: Path, n_train: int, n_dev: int) -> tuple[Path, Path]:
    """MNLI-layout train/dev JSONL from ChaosNLI-SNLI items and their majority labels (items without one skipped)."""
    rows = []
    for line in (data_dir / SNLI).read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["majority_label"] in GLUE:
            rows.append({"idx": len(rows), "premise": item["example"]["premise"],
                         "hypothesis": item["example"]["hypothesis"], "label": GLUE[item["majority_label"]]})
        if len(rows) == n_train + n_dev:
            break
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "mnli_train.jsonl", folder / "mnli_dev.jsonl"
    for path, part in zip(paths, (rows[:n_train], rows[n_train:]), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return paths


def _config(architectures, id2label):
    return SimpleNamespace(architectures=architectures, id2label=id2label)


# ---- label mapping ------------------------------------------------------------------------------------------
def test_head_plan_reads_names_takes_an_order_or_refuses():
    head = ["BertForSequenceClassification"]
    plan = plan_head(_config(head, {0: "CONTRADICTION", 1: "Neutral", 2: "entail"}))
    assert (plan.mode, plan.permutation, plan.labels_from) == ("keep", [2, 1, 0], "config")
    generic = _config(head, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(LabelMappingError) as exc:
        plan_head(generic, name="ckpt", setting="HLV_BERT_MNLI_LABELS")
    assert "\n" not in str(exc.value) and "HLV_BERT_MNLI_LABELS=entailment,neutral,contradiction" in str(exc.value)
    # outputs 0, 1, 2 are contradiction, entailment, neutral -> E is output 1, N output 2, C output 0
    plan = plan_head(generic, labels="contradiction, Entailment, n")
    assert (plan.mode, plan.permutation, plan.labels_from) == ("keep", [1, 2, 0], "setting")
    assert plan_head(generic, head="fresh").mode == "fresh"  # asked for, and recorded as such
    base = plan_head(_config(["BertForMaskedLM"], {0: "LABEL_0", 1: "LABEL_1"}))
    assert (base.mode, base.reason) == ("fresh", "the checkpoint has no classification head")
    with pytest.raises(LabelMappingError, match="contradicts"):  # an order that disagrees with the names
        plan_head(_config(head, {0: "entailment", 1: "neutral", 2: "contradiction"}), labels="c,n,e")
    with pytest.raises(LabelMappingError, match="is not an order"):
        parse_label_order("entailment,neutral", "HLV_BERT_MNLI_LABELS")
    with pytest.raises(LabelMappingError, match="2-way|3-way"):  # a binary head cannot take an NLI order
        plan_head(_config(head, {0: "LABEL_0", 1: "LABEL_1"}), labels="e,n,c")
    assert issubclass(LabelMappingError, HLVError) and LabelMappingError.exit_code == 2


@pytest.fixture(scope="module")
def generic_checkpoint(tmp_path_factory):
    """A tiny BERT classifier whose config names its outputs LABEL_0..2 (outputs: contradiction, entailment,
    neutral), saved as safetensors with its tokenizer."""
    folder = tmp_path_factory.mktemp("label_ckpt")
    _, tok, _ = build_classifier("minilm", random_init=TINY)
    torch.manual_seed(5)
    model = random_bert_classifier(tok, TINY)
    model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model.eval(), tok


@pytest.mark.timeout(120)
def test_a_label_n_checkpoint_is_refused_and_trains_with_an_order(generic_checkpoint, data_dir, tmp_path):
    folder, source, tok = generic_checkpoint
    train, dev = write_snli_standin(data_dir, tmp_path / "nli", 16, 8)
    paths = mnli_stage.write_stage_inputs(tmp_path / "in", train, dev, PROFILES["tiny"])
    fields = dict(train_path=paths["train_path"], dev_path=paths["dev_path"], encoder=str(folder), max_steps=2,
                  eval_every=1, batch_size=4, device="cpu", head_labels_setting="HLV_BERT_MNLI_LABELS")
    with pytest.raises(LabelMappingError) as exc:
        ft.run_finetune(ft.FinetuneConfig(**fields), tmp_path / "refused")
    assert "\n" not in str(exc.value) and "LABEL_0" in str(exc.value)
    assert not (tmp_path / "refused" / "checkpoint").exists()
    model, _, info = build_classifier(str(folder), labels=["contradiction", "entailment", "neutral"])
    assert (info["head"], info["labels_from"], info["permutation"]) == ("keep", "setting", [1, 2, 0])
    batch = tok(["A man sleeps."], ["A person rests."], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(**batch).logits[0], source(**batch).logits[0][[1, 2, 0]])
    metrics = ft.run_finetune(ft.FinetuneConfig(**fields, head_labels=["contradiction", "entailment", "neutral"]),
                              tmp_path / "mapped")
    assert metrics["encoder"]["head"] == "keep" and metrics["encoder"]["labels_from"] == "setting"
    assert metrics["total_steps"] == 2 and (tmp_path / "mapped" / "checkpoint" / "model.safetensors").is_file()


def test_the_entry_point_refuses_an_unmapped_head_in_one_line(generic_checkpoint, tmp_path, capsys):
    from hlv_assets.lib import train_entry

    folder, _, _ = generic_checkpoint
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"mode": "zero_shot", "encoder": str(folder), "device": "cpu"}))
    assert train_entry.main(["--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "are not entailment/neutral/contradiction" in err


# ---- reading the MNLI files ---------------------------------------------------------------------------------
def test_read_mnli_takes_glue_ints_and_words_and_names_a_bad_row(tmp_path):
    good = tmp_path / "ok.jsonl"
    good.write_text('{"premise": "p", "hypothesis": "h", "label": 2, "idx": 7}\n'
                    '{"premise": "p", "hypothesis": "h", "label": "Entailment"}\n'
                    '{"premise": "p", "hypothesis": "h", "label": "n"}\n')
    items = mnli_stage.read_mnli(good)
    assert [it["label"] for it in items] == [2, 0, 1] and items[0]["uid"] == "7"
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"premise": "p", "hypothesis": "h", "label": 0}\n{"premise": "p", "hypothesis": "h", "label": -1}\n')
    with pytest.raises(NLIFileError, match=r"test\.jsonl:2: field 'label': -1"):
        mnli_stage.read_mnli(bad)
    bad.write_text('{"premise": "", "hypothesis": "h", "label": 0}\n')
    with pytest.raises(NLIFileError, match=r":1: field 'premise'"):
        mnli_stage.read_mnli(bad)


def test_settings_need_both_files_and_the_user_checkpoint_wins(tmp_path):
    train, dev = tmp_path / "t.jsonl", tmp_path / "d.jsonl"
    train.write_text("{}\n")
    dev.write_text("{}\n")
    assert mnli_stage.mnli_files({}) is None
    with pytest.raises(SettingsError, match="HLV_MNLI_DEV is not set"):
        mnli_stage.mnli_files({"HLV_MNLI_TRAIN": str(train)})
    with pytest.raises(SettingsError, match="is not a file"):
        mnli_stage.mnli_files({"HLV_MNLI_TRAIN": str(train), "HLV_MNLI_DEV": str(tmp_path / "no.jsonl")})
    env = {"HLV_MNLI_TRAIN": str(train), "HLV_MNLI_DEV": str(dev)}
    assert mnli_stage.stage_configured("bert", env) and not mnli_stage.stage_configured("minilm", env)
    assert not mnli_stage.stage_configured("bert", {**env, "HLV_BERT_MNLI": "/my/ckpt"})
    assert mnli_stage.start_checkpoint("bert", "HLV_BERT_MNLI", "tiny", {**env, "HLV_BERT_MNLI": "/my/ckpt"}) == (
        "/my/ckpt", "user")
    with pytest.raises(SettingsError, match="materialize mnli_bert first"):
        mnli_stage.start_checkpoint("bert", "HLV_BERT_MNLI", "tiny", env)
    paper = mnli_stage.stage_recipe(PROFILES["paper"], "roberta", env)
    assert (paper["batch_size"], paper["learning_rate"], paper["epochs"], paper["max_length"]) == (32, 2e-5, 3, 128)
    assert (paper["selection"], paper["eval_every"], paper["encoder"]) == ("best-dev-accuracy", 500, "roberta-base")
    ft.FinetuneConfig(**paper, train_path="t.jsonl", dev_path="d.jsonl")  # a valid config of the loop


# ---- the stage with the embedded MiniLM ---------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_minilm_mnli_stage_writes_a_checkpoint_the_soft_fine_tune_keeps(data_dir, tmp_path):
    train, dev = write_snli_standin(data_dir, tmp_path / "nli", 32, 16)
    paths = mnli_stage.write_stage_inputs(tmp_path / "in", train, dev, PROFILES["demo"])
    source = paths.pop("source_sha256")
    config = {**mnli_stage.stage_recipe(PROFILES["demo"], "bert"), **paths, "encoder": "minilm",
              "max_steps": 2, "eval_every": 1, "batch_size": 8, "device": "cpu"}
    metrics = ft.run_finetune(config, tmp_path / "run")
    assert metrics["encoder"]["head"] == "fresh" and "MiniLM" in metrics["encoder"]["head_reason"]
    manifest = json.loads((tmp_path / "run" / "checkpoint" / "checkpoint.json").read_text())
    assert manifest["model_sha256"] == ft.sha256_file(tmp_path / "run" / "checkpoint" / "model.safetensors")
    assert manifest["train_data_sha256"] == ft.sha256_file(paths["train_path"]) and len(source["train"]) == 64
    targets = [r["target"] for r in ft.read_jsonl(paths["train_path"])]
    assert all(sorted(t) == [0.0, 0.0, 1.0] for t in targets)  # hard labels as one-hot targets
    assert 0.0 <= metrics["dev"]["accuracy"] <= 1.0 and metrics["total_steps"] == 2
    _, _, info = build_classifier(str(tmp_path / "run" / "checkpoint"))  # the next stage keeps this head
    assert (info["head"], info["labels_from"], info["permutation"]) == ("keep", "config", [0, 1, 2])


def test_the_gpu_script_dry_run_plans_the_authors_recipe_on_cpu(data_dir, tmp_path):
    import subprocess
    import sys

    from hlv_assets.lib.paths import REPO_ROOT

    train, dev = write_snli_standin(data_dir, tmp_path / "nli", 40, 8)
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_mnli.py"), "--train", str(train),
                           "--dev", str(dev), "--encoder", "minilm", "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert (plan["n_train"], plan["steps"], plan["batch_size"]) == (40, 3 * 2, 32)  # 3 epochs of ceil(40 / 32)
    assert plan["selection"] == "best-dev-accuracy" and plan["encoder_found"] and plan["dry_run"]
