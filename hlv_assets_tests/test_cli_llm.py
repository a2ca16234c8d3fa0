"""`hlv llm add|list|retire` through `hlv_assets.cli.main`, each test with its own store (HLV_HOME)."""

from __future__ import annotations

import json

import pytest

from hlv_assets import cli
from hlv_assets.cli import llm as cli_llm


@pytest.fixture
def hlv(monkeypatch, tmp_path, capsys):
    """Runs `hlv ...` against a fresh store under tmp_path; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("HLV_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))  # `hlv run` sets it: restored after the test
    monkeypatch.delenv("HLV_DB_URL", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _listed(hlv) -> dict[str, dict]:
    code, out, _ = hlv("llm", "list", "--format", "json")
    assert code == 0
    return {r["slug"]: r for r in json.loads(out)}


def test_list_shows_the_yaml_defaults(hlv):
    rows = _listed(hlv)
    assert {"llama3", "gpt4o", "mixtral", "smollm2-135m"} <= set(rows)
    assert rows["llama3"] == {
        "slug": "llama3",
        "backend": "released",
        "model": "Llama3",
        "capabilities": ["generate"],
        "active": True,
        "source": "yaml",
    }
    code, out, _ = hlv("llm", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["slug", "backend", "model", "capabilities", "active", "source"]
    assert any(line.startswith("smollm2-135m") and "generate, label_logits" in line for line in lines)


def test_add_validates_and_upserts_with_typed_options(hlv):
    code, out, _ = hlv(
        "llm",
        "add",
        "qwen-judge",
        "--backend",
        "vllm",
        "--model",
        "Qwen/Qwen2.5-7B-Instruct",
        "--revision",
        "abc123",
        "--dtype",
        "bfloat16",
        "--capability",
        "label_logits",
        "--option",
        "tensor_parallel_size=2",
        "--option",
        "enable_prefix_caching=true",
        "--param",
        "temperature=0.0",
        "--param",
        "max_new_tokens=64",
    )
    assert code == 0 and out.startswith("added qwen-judge")
    assert _listed(hlv)["qwen-judge"] == {
        "slug": "qwen-judge",
        "backend": "vllm",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "capabilities": ["label_logits"],
        "active": True,
        "source": "cli",
    }
    from hlv_assets.store import registry

    spec = registry.get(cli_llm._engine(), "qwen-judge")
    assert spec["options"] == {"tensor_parallel_size": 2, "enable_prefix_caching": True}
    assert spec["params"] == {"temperature": 0.0, "max_new_tokens": 64}
    assert (spec["revision"], spec["dtype"]) == ("abc123", "bfloat16")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["Bad|Slug", "--backend", "vllm", "--model", "m"], "invalid LLM slug"),
        (["x", "--backend", "vllm"], "model (an id or a path) is required"),
        (
            ["x", "--backend", "vllm", "--model", "m", "--option", "typo_option=1"],
            "unknown options ['typo_option']",
        ),
        (
            ["x", "--backend", "openai", "--model", "m", "--option", "api_key=sk-secret-value"],
            "look like secrets",
        ),
        (["x", "--backend", "vllm", "--model", "m", "--param", "temprature=0"], "unknown decoding params"),
        (
            ["x", "--backend", "released", "--model", "Llama3", "--capability", "label_logits"],
            "no label_logits",
        ),
        (["x", "--backend", "vllm", "--model", "m", "--option", "novalue"], "is not key=value"),
    ],
)
def test_add_refuses_an_invalid_spec_and_stores_nothing(hlv, argv, message):
    code, out, err = hlv("llm", "add", *argv)
    assert code != 0
    assert message in err + out
    assert "sk-secret-value" not in err + out  # a secret given by mistake is never echoed
    assert "x" not in _listed(hlv)


def test_cli_entry_wins_over_yaml_and_retire_keeps_it(hlv):
    # replace a YAML default: the store keeps the user's version from then on, YAML syncs never overwrite it
    code, out, _ = hlv(
        "llm",
        "add",
        "smollm2-135m",
        "--backend",
        "transformers",
        "--model",
        "my/smollm2",
        "--capability",
        "generate",
    )
    assert code == 0 and out.startswith("updated smollm2-135m")
    from hlv_assets.llm.registry import sync_registry

    active = sync_registry(cli_llm._engine())
    assert "smollm2-135m" in active
    row = _listed(hlv)["smollm2-135m"]
    assert (row["model"], row["capabilities"], row["source"]) == ("my/smollm2", ["generate"], "cli")

    code, out, _ = hlv("llm", "retire", "smollm2-135m")
    assert code == 0 and out.startswith("retired smollm2-135m")
    row = _listed(hlv)["smollm2-135m"]  # still listed: retiring never deletes
    assert (row["active"], row["model"], row["source"]) == (False, "my/smollm2", "cli")
    assert "smollm2-135m" not in sync_registry(cli_llm._engine())

    code, out, _ = hlv("llm", "add", "smollm2-135m", "--backend", "transformers", "--model", "my/smollm2")
    assert code == 0 and _listed(hlv)["smollm2-135m"]["active"] is True  # add again = reactivate


def test_retire_a_yaml_default_never_synced_before(hlv):
    code, _, _ = hlv("llm", "retire", "gpt4o")  # a fresh store: the defaults are synced first
    assert code == 0
    assert _listed(hlv)["gpt4o"]["active"] is False


def test_retire_unknown_slug_fails(hlv):
    code, _, err = hlv("llm", "retire", "no-such-llm")
    assert code == 1 and "no LLM 'no-such-llm'" in err


def test_store_follows_hlv_home(hlv, monkeypatch, tmp_path):
    hlv("llm", "add", "only-here", "--backend", "vllm", "--model", "m")
    assert "only-here" in _listed(hlv)
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "elsewhere"))
    assert "only-here" not in _listed(hlv)


# ---- `hlv run` answers in one line what cannot run, and plans only what can ---------------------------------
def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_run_an_unconfigured_encoder_says_what_to_set(hlv, monkeypatch):
    monkeypatch.delenv("HLV_BERT_MNLI", raising=False)
    code, out, err = hlv("run", "finetune_bert")
    assert code == 2 and out == ""
    assert _one_line(err) == ("hlv: finetune_bert is not configured: set HLV_BERT_MNLI to an MNLI-fine-tuned BERT "
                              "checkpoint (path or HF id)")
    code, _, err = hlv("run", "finetune_roberta_baseline", "--partition", "chaosnli")
    assert code == 2 and "set HLV_ROBERTA_MNLI to an MNLI-fine-tuned RoBERTa checkpoint" in _one_line(err)


def test_run_a_judgment_of_a_non_judge_names_the_judges(hlv):
    code, out, err = hlv("run", "mjd", "--partition", "llama3/human")
    assert code == 2 and out == ""
    assert _one_line(err) == "hlv: mjd[llama3/human]: llama3 cannot judge (no label_logits); judges: smollm2-135m"
    hlv("llm", "retire", "smollm2-135m")
    code, _, err = hlv("run", "mjd", "--partition", "smollm2-135m/none")
    assert code == 2
    assert _one_line(err) == ("hlv: mjd[smollm2-135m/none]: smollm2-135m is retired (hlv llm add it again to "
                              "reactivate); judges: none yet")


def test_dry_run_of_every_judgment_plans_only_active_judges(hlv, data_dir):
    hlv("llm", "add", "old-judge", "--backend", "transformers", "--model", "m")
    hlv("llm", "retire", "old-judge")
    code, out, err = hlv("run", "mjd", "--all-partitions", "--dry-run")
    assert code == 0, err
    planned = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| mjd[")]
    assert planned == ["mjd[smollm2-135m/none]", "mjd[smollm2-135m/human]"]  # no gpt4o, llama3, mixtral, old-judge


def test_explanation_source_in_the_readme_slash_form(hlv):
    import dagster as dg

    code, _, err = hlv("run", "explanation_sets", "--partition", "llama3/varierr-lg-first", "--dry-run")
    assert code == 2
    assert _one_line(err) == ("hlv: explanation_sets[llama3/varierr-lg-first]: llama3.varierr-lg-first is not a "
                              "`explanations` partition (materialize llm_generations[llama3] first); explanations: "
                              "human, none")
    with dg.DagsterInstance.get() as instance:  # what llm_generations[llama3] adds when it runs
        instance.add_dynamic_partitions("explanations", ["llama3.varierr-lg-first"])
    for form in ("llama3/varierr-lg-first", "llama3.varierr-lg-first"):
        code, out, err = hlv("run", "explanation_sets", "--partition", form, "--dry-run")
        assert code == 0 and "| **total** | 0 |" in out, err


def test_run_takes_both_forms_of_a_judgment_key(hlv, data_dir):
    for form in ("smollm2-135m/human", "human|smollm2-135m"):
        code, out, err = hlv("run", "mjd", "--partition", form, "--dry-run")
        assert code == 0, err
        assert [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| mjd[")] == [
            "mjd[smollm2-135m/human]"]
