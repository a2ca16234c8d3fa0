"""`hlv audit` on a results store written by hand (no Dagster instance): the row, its history, the MJD's
judge, prompts, explanation source and generator calls, a fine-tune's checkpoints (re-hashed), the raw files,
and the CLI in text and JSON. The chain through Dagster's records is exercised in defs/test_staleness.py."""

from __future__ import annotations

import hashlib
import json

import pytest

import hlv_assets.audit as audit_mod
from hlv_assets import cli
from hlv_assets.lib import raw
from hlv_assets.lib.datasource import pinned_files
from hlv_assets.lib.judgments import COMMENT_TEMPLATE, EXPLANATION_TEMPLATE, PLAIN_TEMPLATE
from hlv_assets.lib.prompts import GENERATION_TEMPLATE, template_sha256
from hlv_assets.store.results import make_row_id

PARTITION = "llama3.lf-first|smollm2-135m"  # Dagster's key string: explanations|llm
PROFILE = "tiny"


def _lineage(run_id: str, code_version: str = "mjd-comparison-v1+tiny") -> dict:
    return {"run_id": run_id, "code_version": code_version, "inputs_sha256": "in-" + run_id}


@pytest.fixture
def store(tmp_path, monkeypatch, data_dir):
    """A store with an MJD comparison row written twice, its judgments, the generator's answers and calls,
    and a fine-tune on that MJD with a checkpoint on disk."""
    from hlv_assets.llm.registry import sync_registry
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore, SqlCallStore

    url = f"sqlite:///{tmp_path / 'hlv.db'}"
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "home"))  # no dagster.yaml there: store-side audit only
    monkeypatch.setenv("HLV_DB_URL", url)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("HLV_DATA_DIR", str(data_dir))
    engine = get_engine(url)
    sync_registry(engine)
    results = ResultStore(engine)
    key = {"source": "mjd", "llm": "smollm2-135m", "explanations": "llama3.lf-first", "conversion": "softmax"}
    row_id = make_row_id("distribution_comparison", key, PROFILE)
    for run_id, kl in (("run-1", 0.40), ("run-2", 0.33)):
        results.replace_rows(
            "distribution_comparison",
            [{"row_id": row_id, "items_sha256": "items-4", "data": {**key, "n": 4, "kl": kl, "jsd": 0.3}}],
            asset_key="mjd_comparison",
            partition_key=PARTITION,
            profile=PROFILE,
            lineage=_lineage(run_id),
        )
    judgments = [
        (
            f"u{i}|{i}",
            {
                "item": f"u{i}",
                "variant": "explanations",
                "kind": "logits",
                "scores": [1, 2, 3],
                "prompt_tokens": 100,
            },
        )
        for i in range(6)
    ]
    results.replace_artifacts(
        "judgment",
        judgments,
        asset_key="mjd",
        partition_key=PARTITION,
        profile=PROFILE,
        lineage=_lineage("run-mjd", "mjd-x-v1+tiny"),
    )
    answers = [
        (f"u{i}|{lab}", {"label": lab, "parsed": ["an explanation"], "ok": lab != "c"})
        for i in range(2)
        for lab in "enc"
    ]
    results.replace_artifacts(
        "generation",
        answers,
        asset_key="llm_generations",
        partition_key="llama3",
        profile=PROFILE,
        lineage=_lineage("run-gen", "gen-x-v1+tiny"),
    )
    calls = SqlCallStore(engine)
    for i in range(3):
        calls.put(
            f"k{i}",
            {
                "backend": "released",
                "model_id": "Llama3",
                "operation": "generate",
                "text": "t",
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "cost_usd": 0.25,
            },
        )
    calls.put(
        "other", {"backend": "openai", "model_id": "gpt-4o", "operation": "generate", "prompt_tokens": 99}
    )

    checkpoint = tmp_path / "checkpoints" / "seed42" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    ft_key = {**key, "encoder": "minilm", "encoder_model": "tiny-encoder"}
    ft_id = make_row_id("finetune_comparison", ft_key, PROFILE)
    results.replace_rows(
        "finetune_comparison",
        [
            {
                "row_id": ft_id,
                "items_sha256": "items-4",
                "data": {
                    **ft_key,
                    "seeds": [42],
                    "test_kl_published": 0.1,
                    "distribution_asset": "mjd:softmax",
                    "distribution_partition": PARTITION,
                    "checkpoints": [
                        {
                            "path": str(checkpoint),
                            "sha256": hashlib.sha256(b"weights").hexdigest(),
                            "train_data_sha256": "train",
                        }
                    ],
                },
            }
        ],
        asset_key="finetune_minilm",
        partition_key=PARTITION,
        profile=PROFILE,
        lineage=_lineage("run-ft"),
    )
    return {"engine": engine, "row_id": row_id, "ft_id": ft_id, "checkpoint": checkpoint}


def test_mjd_row_chain_from_the_store(store):
    report = audit_mod.audit(store["row_id"], engine=store["engine"])
    assert report["id"] == store["row_id"] and report["table"] == "distribution_comparison"
    assert report["row"]["kl"] == 0.33 and report["row"]["profile"] == PROFILE
    w = report["written_by"]
    assert (w["asset"], w["partition"], w["run_id"], w["code_version"]) == (
        "mjd_comparison",
        PARTITION,
        "run-2",
        "mjd-comparison-v1+tiny",
    )
    assert w["asset_partition"] == "mjd_comparison[smollm2-135m/llama3.lf-first]"

    mjd = report["mjd"]
    assert (mjd["judge"], mjd["explanations"], mjd["conversion"]) == (
        "smollm2-135m",
        "llama3.lf-first",
        "softmax",
    )
    judge = mjd["judge_llm"]
    assert (judge["backend"], judge["model"], judge["dtype"], judge["registry_source"]) == (
        "transformers",
        "embedded:smollm2-135m",
        "float32",
        "yaml",
    )
    assert mjd["judgments"] == {
        "records": 6,
        "run_id": "run-mjd",
        "code_version": "mjd-x-v1+tiny",
        "score_kinds": ["logits"],
        "prompt_tokens": 600,
        "missing_letters": ["refuse"],  # records from before the rule existed: refuse, the only behaviour then
        "prompts_missing_letters": 0,
    }
    templates = {t["name"]: t for t in mjd["prompt"]["templates"]}
    assert set(templates) == {"EXPLANATION_TEMPLATE", "COMMENT_TEMPLATE"}  # the variant the records used
    assert templates["EXPLANATION_TEMPLATE"] == {
        "name": "EXPLANATION_TEMPLATE",
        "text": EXPLANATION_TEMPLATE,
        "sha256": template_sha256(EXPLANATION_TEMPLATE),
    }
    assert templates["COMMENT_TEMPLATE"]["text"] == COMMENT_TEMPLATE

    source = mjd["explanation_source"]
    assert (source["generator"], source["set"]) == ("llama3", "lf-first")
    assert source["rule"].startswith("LF (label-free)") and "first k parsed" in source["rule"]
    assert source["selection_options"]["lf_order"] == ["e", "c", "n"]  # the released Llama3 convention

    gen = mjd["generator"]
    assert (gen["slug"], gen["backend"], gen["model"]) == ("llama3", "released", "Llama3")
    assert gen["identity"] == {"backend": "released", "model_id": "Llama3"}  # from the spec (no Dagster run)
    assert gen["call_cache"] == {
        "backend": "released",
        "model_id": "Llama3",
        "operation": "generate",
        "records": 3,
        "prompt_tokens": 30,
        "completion_tokens": 15,
        "cost_usd": 0.75,
    }
    assert gen["generations"]["records"] == 6 and gen["generations"]["parsed_ok"] == 4
    assert gen["released_files"]["files"] == 1023 and gen["released_files"]["folder"] == "Llama3-raw-output/"
    assert gen["prompt"]["sha256"] == template_sha256(GENERATION_TEMPLATE)

    files = {f["path"]: f for f in report["raw_inputs"]}
    assert set(files) == {raw.CHAOSNLI_MNLI, raw.VARIERR, raw.HLV_ITEMS}
    for rel, f in files.items():
        assert f["pinned_sha256"] == pinned_files()[rel].sha256 == f["current_sha256"]
        assert f["upstream"].startswith(pinned_files()[rel].repository)

    assert [(h["run_id"], h["current"]) for h in report["history"]] == [("run-2", True), ("run-1", False)]
    assert report["history"][0]["changed"] == {"kl": {"before": 0.40, "after": 0.33}}
    assert any("no Dagster instance" in n for n in report["notes"])


def test_plain_prompt_for_the_none_source():
    templates = audit_mod._templates(["plain"])
    assert [t["name"] for t in templates["templates"]] == ["PLAIN_TEMPLATE"]
    assert templates["templates"][0]["sha256"] == template_sha256(PLAIN_TEMPLATE)


def test_finetune_row_checkpoint_then_distribution_chain(store):
    report = audit_mod.audit(store["ft_id"], engine=store["engine"])
    ft = report["finetune"]
    assert (ft["encoder"], ft["distribution_asset"], ft["distribution_partition"]) == (
        "minilm",
        "mjd:softmax",
        PARTITION,
    )
    [ckpt] = ft["checkpoints"]
    assert ckpt["seed"] == 42 and ckpt["matches"] is True
    assert report["mjd"]["judge"] == "smollm2-135m" and report["mjd"]["judgments"]["records"] == 6

    (store["checkpoint"] / "model.safetensors").write_bytes(b"tampered")
    [ckpt] = audit_mod.audit(store["ft_id"], engine=store["engine"])["finetune"]["checkpoints"]
    assert ckpt["matches"] is False and ckpt["current_sha256"] == hashlib.sha256(b"tampered").hexdigest()
    [ckpt] = audit_mod.audit(store["ft_id"], engine=store["engine"], verify=False)["finetune"]["checkpoints"]
    assert "matches" not in ckpt


def test_ids_prefixes_and_unknown_rows(store):
    assert audit_mod.audit(store["row_id"][:8], engine=store["engine"])["id"] == store["row_id"]
    with pytest.raises(audit_mod.AuditError, match="matches 2 rows"):
        audit_mod.audit("", engine=store["engine"])
    with pytest.raises(audit_mod.AuditError, match="no result row"):
        audit_mod.audit("dc-000000000000", engine=store["engine"])


@pytest.mark.parametrize(
    "source, generator, words",
    [
        ("none", None, "plain MJD prompt"),
        ("human", None, "VariErr's 4 annotator explanations"),
        ("gpt4o.varierr-lg-longest", "gpt4o", "VariErr-LG (label-guided)"),
        ("mixtral.mnli-lg-first", "mixtral", "MNLI-LG (label-guided): 5 slots"),
        ("smollm2-135m.lf-longest", "smollm2-135m", "longest: the k longest by characters"),
        ("llama3.lf-first@myset", "llama3", "LF (label-free)"),
    ],
)
def test_selection_rules_use_the_spec_names(source, generator, words):
    rule = audit_mod.selection_rule(source)
    assert rule["generator"] == generator and words in rule["rule"]


@pytest.fixture
def hlv(monkeypatch, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_text_and_json(store, hlv):
    code, out, _ = hlv("audit", store["row_id"], "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["id"] == store["row_id"] and report["mjd"]["judge_llm"]["slug"] == "smollm2-135m"
    assert "chain" in report and report["chain"] == []

    code, out, _ = hlv("audit", store["row_id"])
    assert code == 0
    for line in (
        "written by mjd_comparison[smollm2-135m/llama3.lf-first]",
        "judge smollm2-135m: transformers embedded:smollm2-135m",
        "missing letters: rule refuse, 0 prompts missed one",
        f"EXPLANATION_TEMPLATE sha256 {template_sha256(EXPLANATION_TEMPLATE)}",
        "explanations llama3.lf-first: LF (label-free)",
        "generator llama3: released Llama3",
        "call cache: 3 generate records for released/Llama3, 30 prompt + 15 completion tokens",
        raw.HLV_ITEMS,
        "history (2 versions, newest first):",
        "kl 0.4 -> 0.33",
    ):
        assert line in out, line

    code, out, err = hlv("audit", "nope-123")
    assert code == 1 and "no result row with id 'nope-123'" in err


def test_mjd_audit_names_the_missing_letters_rule_of_an_api_judge(store):
    from hlv_assets.lib.judgments import JudgmentRecord
    from hlv_assets.store.results import ResultStore

    records = [JudgmentRecord(f"u{i}", (0, 1, 2), (), "plain", [-0.01, -5.0, None if i else -20.0], "logprobs",
                              missing_letters="floor", top_k_floor=-12.0) for i in range(3)]
    ResultStore(store["engine"]).replace_artifacts(
        "judgment", [(f"{r.item}|0", r.as_dict()) for r in records], asset_key="mjd", partition_key=PARTITION,
        profile=PROFILE, lineage=_lineage("run-api", "mjd-x-v1+tiny"))
    judgments = audit_mod.audit(store["row_id"], engine=store["engine"])["mjd"]["judgments"]
    assert judgments["missing_letters"] == ["floor"] and judgments["prompts_missing_letters"] == 2
    assert judgments["score_kinds"] == ["logprobs"]
