"""Soft-label fine-tuning: loss, config, readers on the real data, a few-step tiny run, entry point.

The runs use a tiny randomly initialised BERT (2 layers, width 32) with the embedded MiniLM tokenizer and
a few dozen real items, so each stays well under 30 s on two CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hlv_assets.lib import finetune as ft
from hlv_assets.lib.evaluation import chaosnli_metrics, predict_logits, soft_ce_loss
from hlv_assets.lib.finetune import training as ft_training
from hlv_assets.lib.paths import REPO_ROOT

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
DEV = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/dev.json"
TEST = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/test.json"
TRAIN_341 = "mjd_estimator/MJD-generator/NLI_explanations.json"


def anli(r: int) -> str:
    return f"anli/anli_v1.0/R{r}/test.jsonl"


# --------------------------------------------------------------------------------------------------
# loss, schedule, config
# --------------------------------------------------------------------------------------------------


def test_soft_ce_with_one_hot_is_exactly_hard_ce():
    F = torch.nn.functional
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=g) * 4
    labels = torch.randint(0, 3, (16,), generator=g)
    one_hot = F.one_hot(labels, 3).float()
    soft = ft.soft_cross_entropy(logits, one_hot)
    assert torch.equal(soft, F.cross_entropy(logits, labels))
    # a genuinely soft target: -sum p log softmax, averaged over the batch (not BCE)
    p = torch.softmax(torch.randn(16, 3, generator=g), dim=-1)
    expected = -(p * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    assert torch.allclose(ft.soft_cross_entropy(logits, p), expected, atol=1e-6)
    assert not torch.allclose(ft.soft_cross_entropy(logits, p), F.binary_cross_entropy_with_logits(logits, p))
    # bf16 logits are cast up: same value as float32 on the same (rounded) numbers
    assert ft.soft_cross_entropy(logits.bfloat16(), p).dtype == torch.float32
    assert float(ft.soft_cross_entropy(logits, p)) == pytest.approx(
        soft_ce_loss(logits.numpy(), p.numpy()), abs=1e-5
    )


def test_config_defaults_are_the_recipe_and_roundtrip_json(tmp_path):
    cfg = ft.FinetuneConfig(train_path="t.jsonl")
    assert (cfg.batch_size, cfg.learning_rate, cfg.epochs, cfg.max_length) == (4, 2e-5, 5, 128)
    assert (cfg.adam_eps, cfg.weight_decay, cfg.warmup_steps, cfg.eval_every) == (1e-6, 0.0, 0, 20)
    assert (cfg.selection, cfg.bf16, cfg.seed, cfg.encoder) == ("final", False, 42, "minilm")
    cfg2 = ft.FinetuneConfig(train_path="t.jsonl", anli_paths={"R1": "a"}, random_init=TINY, seed=7)
    path = tmp_path / "cfg.json"
    cfg2.to_json(path)
    assert ft.FinetuneConfig.from_json(path) == cfg2
    assert ft.FinetuneConfig.from_json(cfg2.to_json()) == cfg2
    with pytest.raises(ValueError, match="unknown"):
        ft.FinetuneConfig.from_dict({"train_path": "t", "lr": 1})
    with pytest.raises(ValueError):
        ft.FinetuneConfig()  # fine-tuning needs training data
    ft.FinetuneConfig(mode="zero_shot")  # zero-shot does not
    with pytest.raises(ValueError, match="selection must be one of final, best-dev-macro-f1, "):
        ft.FinetuneConfig(train_path="t.jsonl", selection="best")
    with pytest.raises(ValueError, match="selection best-dev-accuracy needs dev evaluations"):
        ft.FinetuneConfig(train_path="t.jsonl", selection="best-dev-accuracy")  # no dev_path
    assert ft.FinetuneConfig(train_path="t", dev_path="d", selection="best-dev-kl-published").selection


def test_selection_names_agree_with_the_settings():
    from hlv_assets.lib import settings
    from hlv_assets.lib.finetune.config import SELECTIONS, selection_metric

    assert SELECTIONS == settings.FINETUNE_SELECTIONS
    assert [selection_metric(s) for s in SELECTIONS] == [None, *ft.SELECTION_METRICS]


def test_linear_schedule_without_warmup():
    f = ft.linear_schedule(10)
    assert [f(s) for s in (0, 5, 10, 11)] == [1.0, 0.5, 0.0, 0.0]
    g = ft.linear_schedule(10, warmup_steps=2)
    assert [g(0), g(1), g(2), g(6)] == [0.0, 0.5, 1.0, 0.5]


# --------------------------------------------------------------------------------------------------
# readers on the real data pack
# --------------------------------------------------------------------------------------------------


def test_readers_on_the_real_files(data_dir):
    dev = ft.read_soft_items(data_dir / DEV)
    test = ft.read_soft_items(data_dir / TEST)
    rounds = [ft.read_anli(data_dir / anli(r)) for r in (1, 2, 3)]
    train = ft.read_nli_explanations(data_dir / TRAIN_341)
    assert [len(dev), len(test), *map(len, rounds), len(train)] == [629, 629, 1000, 1000, 1200, 341]
    for items in (dev, test, train):
        t = np.array([it["target"] for it in items])
        np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-3)
        assert all(it["premise"] and it["hypothesis"] for it in items)
    pairs = [{(it["premise"], it["hypothesis"]) for it in s} for s in (dev, test, train)]
    assert not (pairs[0] & pairs[1]) and not (pairs[0] & pairs[2]) and not (pairs[1] & pairs[2])
    for items in rounds:
        assert {it["label"] for it in items} == {0, 1, 2}
        assert all("uid" in it for it in items)
    assert dev[0]["target"] == [0.5, 0.45, 0.05]


# --------------------------------------------------------------------------------------------------
# label mapping of an MNLI head
# --------------------------------------------------------------------------------------------------


def test_mnli_head_is_mapped_by_label_names(tmp_path):
    from hlv_assets.lib.encoders import build_classifier, nli_label_permutation, random_bert_classifier

    assert nli_label_permutation({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}) == [2, 1, 0]
    assert nli_label_permutation({"0": "entailment", "1": "neutral", "2": "contradiction"}) == [0, 1, 2]
    assert nli_label_permutation({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}) is None
    assert nli_label_permutation({0: "entailment", 1: "not_entailment"}) is None

    _, tok, _ = build_classifier("minilm", random_init=TINY)
    torch.manual_seed(3)
    source = random_bert_classifier(tok, TINY).eval()
    source.config.id2label = {0: "contradiction", 1: "entailment", 2: "neutral"}  # an MNLI-style order
    source.config.label2id = {v: k for k, v in source.config.id2label.items()}
    source.save_pretrained(tmp_path / "mnli")
    tok.save_pretrained(tmp_path / "mnli")
    model, _, info = build_classifier(str(tmp_path / "mnli"), head="auto")
    assert info["head"] == "keep" and info["permutation"] == [1, 2, 0]
    batch = tok(["A man sleeps."], ["A person rests."], return_tensors="pt")
    with torch.no_grad():
        before = source(**batch).logits[0]
        after = model.eval()(**batch).logits[0]
    torch.testing.assert_close(after, before[[1, 2, 0]])
    assert model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    fresh, _, info = build_classifier(str(tmp_path / "mnli"), head="fresh")
    assert info["head"] == "fresh"
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)


# --------------------------------------------------------------------------------------------------
# a few-step tiny run
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_data(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ft_data")
    train = ft.read_nli_explanations(data_dir / TRAIN_341)[:32]
    dev = ft.read_soft_items(data_dir / DEV)[:24]
    test = ft.read_soft_items(data_dir / TEST)[:8]
    r1 = ft.read_anli(data_dir / anli(1))[:8]
    paths = {}
    for name, rows in (("train", train), ("dev", dev), ("test", test), ("r1", r1)):
        paths[name] = str(ft.write_jsonl(rows, folder / f"{name}.jsonl"))
    return paths


def tiny_config(paths, **overrides) -> ft.FinetuneConfig:
    fields = dict(
        train_path=paths["train"],
        dev_path=paths["dev"],
        test_path=paths["test"],
        anli_paths={"R1": paths["r1"]},
        random_init=TINY,
        learning_rate=1e-3,
        max_steps=16,
        eval_every=4,
        device="cpu",
        seed=13,
    )
    fields.update(overrides)
    return ft.FinetuneConfig(**fields)


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft_run")
    config = tiny_config(tiny_data)
    metrics = ft.run_finetune(config, out)
    return config, out, metrics


def _load_checkpoint(folder: Path):
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)


def test_training_decreases_loss_and_writes_a_safe_checkpoint(tiny_run):
    config, out, metrics = tiny_run
    ckpt = out / "checkpoint"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()
    assert (ckpt / "tokenizer.json").is_file() or (ckpt / "vocab.txt").is_file()
    assert ft.forbidden_files(out) == []
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pkl", ".pt", ".pth")]
    info = json.loads((ckpt / "checkpoint.json").read_text())
    assert info["model_sha256"] == ft.sha256_file(ckpt / "model.safetensors")
    assert info["model_sha256"] == metrics["checkpoint"]["model_sha256"]
    assert info["train_data_sha256"] == ft.sha256_file(config.train_path)
    assert info["config"] == config.to_dict()
    assert {"torch", "transformers", "safetensors", "numpy"} <= set(info["versions"])
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name]

    # the loss on the training items is lower after training than with the same initial weights
    train_items = ft.read_soft_items(config.train_path)
    targets = np.array([it["target"] for it in train_items])
    prem, hyp = [it["premise"] for it in train_items], [it["hypothesis"] for it in train_items]
    initial, tok, _ = ft.build_model(config)
    trained, tok2 = _load_checkpoint(ckpt)
    before = soft_ce_loss(predict_logits(initial, tok, prem, hyp), targets)
    after = soft_ce_loss(predict_logits(trained, tok2, prem, hyp), targets)
    assert after < before
    assert len(metrics["train_loss"]) == metrics["total_steps"] == 16

    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["anli"]) == {"R1"} and saved["test"]["n"] == 8
    assert saved["throughput"]["train_samples_per_s"] > 0 and saved["throughput"]["eval_samples_per_s"] > 0
    assert saved["memory"]["peak_rss_mb"] > 0
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds["dev"]) == 24 and len(preds["test"]) == 8 and len(preds["anli"]["R1"]) == 8
    assert preds["label_order"] == ["entailment", "neutral", "contradiction"]
    assert "uid" in preds["anli"]["R1"][0]
    np.testing.assert_allclose([sum(r["probs"]) for r in preds["dev"]], 1.0, atol=1e-6)


def _evaluate_checkpoint(folder: Path, path: str) -> dict:
    model, tok = _load_checkpoint(folder)
    items = ft.read_soft_items(path)
    logits = predict_logits(model, tok, [d["premise"] for d in items], [d["hypothesis"] for d in items])
    return chaosnli_metrics(logits, np.array([d["target"] for d in items]))


def test_default_selection_reports_and_saves_the_final_model(tiny_run):
    config, out, metrics = tiny_run
    assert config.selection == "final" and metrics["selection"] == "final" and metrics["precision"] == "fp32"
    assert metrics["selected_step"] == metrics["total_steps"] == 16
    curve = metrics["training_curve"]
    assert [p["step"] for p in curve] == [4, 8, 12, 16]  # dev evaluations during training are still logged
    assert [p["selected"] for p in curve] == [False, False, False, True] and "best" not in curve[0]
    # the written checkpoint is the final model, and the reported dev and test numbers are its evaluation
    for split, path in (("dev", config.dev_path), ("test", config.test_path)):
        again = _evaluate_checkpoint(out / "checkpoint", path)
        for key in ("macro_f1", "weighted_f1", "accuracy"):
            assert metrics[split][key] == again[key]
        for key in ("kl_published", "ce_loss", "jsd"):
            assert metrics[split][key] == pytest.approx(again[key], abs=1e-5)
    assert metrics["dev"]["ce_loss"] == curve[-1]["dev_ce_loss"]
    info = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert (info["selection"], info["selected_step"], info["seed"], info["precision"]) == ("final", 16, 13, "fp32")


def test_best_dev_selection_is_opt_in_and_picks_the_best(tiny_data, tmp_path):
    config = tiny_config(tiny_data, selection="best-dev-macro-f1", max_steps=8, eval_every=2, anli_paths={})
    metrics = ft.run_finetune(config, tmp_path)
    curve = metrics["training_curve"]
    f1s = [p["dev_macro_f1"] for p in curve]
    best = curve[int(np.argmax(f1s))]  # first maximum: ties keep the earlier step
    assert metrics["selection"] == "best-dev-macro-f1" and metrics["selected_step"] == best["step"]
    assert [p["selected"] for p in curve] == [p["step"] == best["step"] for p in curve]
    assert metrics["dev"]["macro_f1"] == best["dev_macro_f1"] == max(f1s)
    again = _evaluate_checkpoint(tmp_path / "checkpoint", config.dev_path)
    assert again["macro_f1"] == best["dev_macro_f1"]
    assert again["ce_loss"] == pytest.approx(best["dev_ce_loss"], abs=1e-5)
    assert json.loads((tmp_path / "checkpoint" / "checkpoint.json").read_text())["selection"] == "best-dev-macro-f1"


def test_selection_keeps_an_earlier_step(tiny_data, tmp_path, monkeypatch):
    # force the selection metric to peak at the 2nd of 3 evaluations: the checkpoint must be step 4's
    scripted = iter([0.1, 0.9, 0.5])
    monkeypatch.setattr(ft_training, "_selection_value", lambda metrics, name: next(scripted))
    config = tiny_config(tiny_data, max_steps=6, eval_every=2, test_path=None, anli_paths={},
                         selection="best-dev-ce-loss")
    metrics = ft.run_finetune(config, tmp_path)
    assert metrics["selected_step"] == 4 and metrics["total_steps"] == 6
    step4 = next(p for p in metrics["training_curve"] if p["step"] == 4)
    step6 = next(p for p in metrics["training_curve"] if p["step"] == 6)
    assert metrics["dev"]["ce_loss"] == step4["dev_ce_loss"] != step6["dev_ce_loss"]
    assert _evaluate_checkpoint(tmp_path / "checkpoint", config.dev_path)["ce_loss"] == pytest.approx(
        step4["dev_ce_loss"], abs=1e-5
    )


def test_losses_are_read_from_the_device_only_at_log_and_eval_points(tiny_data, monkeypatch):
    # CUDA: a read is a host sync; the steps between log / eval points must not wait for the GPU
    reads = []
    original = ft_training._LossLog.read

    def counting(self):
        reads.append(len(self._pending))
        return original(self)

    monkeypatch.setattr(ft_training._LossLog, "read", counting)
    config = tiny_config(tiny_data, max_steps=12, eval_every=6, test_path=None, anli_paths={})
    events = []
    metrics = ft.run_finetune(config, reporter=events.append)
    # step 1 and 10 (log), 6 and 12 (eval), the end: each read takes the losses pending since the last one
    assert reads == [1, 5, 4, 2, 0]
    assert [e["step"] for e in events if e["event"] in ("step", "eval")] == [1, 6, 10, 12]
    assert len(metrics["train_loss"]) == 12 and all(isinstance(v, float) for v in metrics["train_loss"])
    step10 = next(e for e in events if e.get("step") == 10)
    assert step10["loss"] == metrics["train_loss"][9]
    assert metrics["training_curve"][0]["train_loss"] == pytest.approx(np.mean(metrics["train_loss"][:6]))


def test_same_seed_same_run(tiny_run, tmp_path):
    config, _, metrics = tiny_run
    again = ft.run_finetune(config, tmp_path)
    assert again["train_loss"] == metrics["train_loss"]
    assert again["training_curve"] == metrics["training_curve"]
    assert again["checkpoint"]["model_sha256"] == metrics["checkpoint"]["model_sha256"]
    other = ft.run_finetune(ft.FinetuneConfig(**{**config.to_dict(), "seed": 14, "max_steps": 2}))
    assert other["train_loss"] != metrics["train_loss"][:2]


def test_zero_shot_evaluates_without_training(tiny_data, tmp_path):
    config = tiny_config(tiny_data, mode="zero_shot", train_path=None)
    metrics = ft.run_finetune(config, tmp_path)
    assert metrics["mode"] == "zero_shot" and "checkpoint" not in metrics
    assert metrics["dev"]["n"] == 24 and metrics["anli"]["R1"]["n"] == 8
    assert (tmp_path / "metrics.json").is_file() and not (tmp_path / "checkpoint").exists()


def test_entry_point_subprocess(tiny_data, tmp_path):
    config = tiny_config(tiny_data, max_steps=4, eval_every=2, test_path=None)
    cfg_path = tmp_path / "cfg.json"
    config.to_json(cfg_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hlv_assets.lib.train_entry",
            "--config",
            str(cfg_path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert [e["step"] for e in events if e["event"] == "eval"] == [2, 4]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["total_steps"] == 4 and "R1" in metrics["anli"]
    assert (tmp_path / "out" / "checkpoint" / "model.safetensors").is_file()
    assert ft.forbidden_files(tmp_path / "out") == []
    bad = subprocess.run(
        [sys.executable, "-m", "hlv_assets.lib.train_entry", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2


def test_pipes_reporter_sends_progress_summary_and_materialization(monkeypatch):
    from hlv_assets.lib import train_entry

    class FakePipes:
        is_asset_step = True
        asset_keys = ["finetune"]

        def __init__(self):
            self.lines, self.custom, self.materialized = [], [], []
            self.log = type("Log", (), {"info": lambda _self, m: self.lines.append(m)})()

        def report_custom_message(self, payload):
            self.custom.append(payload)

        def report_asset_materialization(self, metadata):
            self.materialized.append(metadata)

    pipes = FakePipes()
    report = train_entry._pipes_reporter(pipes)
    report({"event": "eval", "step": 2, "dev_macro_f1": 0.4})
    report({"event": "done", "dev_macro_f1": 0.5, "peak_cuda_allocated_mb": None})
    assert [json.loads(line)["event"] for line in pipes.lines] == ["eval", "done"]
    assert pipes.custom == [{"dev_macro_f1": 0.5, "peak_cuda_allocated_mb": None}]
    assert pipes.materialized == [{"dev_macro_f1": 0.5}]
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    assert not train_entry._pipes_present()


@pytest.mark.filterwarnings("ignore:.*is currently in preview")
def test_entry_point_under_dagster_pipes(tiny_data, tmp_path):
    import dagster as dg
    config = tiny_config(tiny_data, max_steps=2, eval_every=2, test_path=None, anli_paths={})

    @dg.asset
    def finetuned(context):  # no annotations: this module's are strings (from __future__ import annotations)
        return (
            dg.PipesSubprocessClient()
            .run(
                command=[sys.executable, "-m", "hlv_assets.lib.train_entry"],
                context=context,
                extras={"finetune_config": config.to_dict(), "out_dir": str(tmp_path / "out")},
                env={"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
            )
            .get_materialize_result()
        )

    result = dg.materialize([finetuned])
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["total_steps"].value == 2
    assert 0.0 <= metadata["dev_macro_f1"].value <= 1.0
    assert (tmp_path / "out" / "metrics.json").is_file()
