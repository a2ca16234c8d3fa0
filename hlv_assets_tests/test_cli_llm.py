"""`hlv llm add|list|retire` through `hlv_assets.cli.main`, each test with its own store (HLV_HOME)."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from hlv_assets import cli
from hlv_assets.cli import llm as cli_llm
from hlv_assets_tests.llm.fake_openai_server import FakeOpenAIServer, answer_text

README = Path(__file__).parents[1] / "README.md"


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
    monkeypatch.delenv("HLV_MNLI_TRAIN", raising=False)
    code, out, err = hlv("run", "finetune_bert")
    assert code == 2 and out == ""
    assert _one_line(err) == ("hlv: finetune_bert is not configured: set HLV_BERT_MNLI to an MNLI-fine-tuned BERT "
                              "checkpoint (path or HF id), or HLV_MNLI_TRAIN and HLV_MNLI_DEV to MNLI files to train "
                              "one (mnli_bert)")
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


def readme_keyless_add() -> list[str]:
    """The README's `hlv llm add` of a keyless OpenAI-compatible server, as argv (without `hlv`)."""
    commands = [line.strip() for line in README.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
                if line.startswith("hlv llm add") and "--option api_key_env= " in line]
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0])
    assert argv[:3] == ["hlv", "llm", "add"] and "api_key_env=" in argv
    return argv[1:]


def _softmax_t20(*logprobs: float) -> list[float]:
    weights = [math.exp(x / 20.0) for x in logprobs]
    return [w / sum(weights) for w in weights]


def _top_by_label(prompt: str) -> list[tuple[str, float]]:
    """A server whose model says entailment: the letter showing Entailment -0.01, Neutral -5; Contradiction
    is -20 in item a's answers and missing from item b's (whose top-k list ends at -12)."""
    options = re.findall(r"\n([ABC])\. (Entailment|Neutral|Contradiction)", prompt)
    shown = {word: letter for letter, word in options}
    top = [(shown["Entailment"], -0.01), (shown["Neutral"], -5.0)]
    if "Premise of b" in prompt:
        return top + [("The", -12.0)]
    return top + [(shown["Contradiction"], -20.0), ("The", -25.0)]


@pytest.mark.timeout(120)
def test_the_readme_keyless_registration_judges_and_generates_against_a_local_server(hlv, monkeypatch):
    from hlv_assets.defs.llm_resource import LLMResource
    from hlv_assets.lib.mjd_run import JudgeOptions, judge, missing_letter_refusal, mjd_frames
    from hlv_assets.store.db import default_url

    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-be-sent")  # set, and still never sent
    items = pd.DataFrame({"uid": ["a", "b"], "premise": ["Premise of a.", "Premise of b."],
                          "hypothesis": ["Hypothesis a.", "Hypothesis b."],
                          "explanations": [[["It follows.", "e"]], [["It may follow.", "n"]]]})
    with FakeOpenAIServer(api_key=None, top_for=_top_by_label) as server:  # 401 to any Authorization header
        argv = readme_keyless_add()
        urls = [i for i, a in enumerate(argv) if re.fullmatch(r"base_url=http://[^/@]+/v1", a)]
        assert len(urls) == 1  # the one thing changed: the README's host, here the local server
        argv[urls[0]] = f"base_url={server.url}"
        code, out, err = hlv(*argv)
        assert code == 0 and out.startswith(f"added {argv[2]}"), err
        slug = argv[2]

        def judged(options: JudgeOptions):
            llm = LLMResource(db_url=default_url(), budget_usd=None).cached(slug, "tiny")
            return llm, judge(llm, items, options)[1]

        llm, records = judged(JudgeOptions(orders=1))  # the registered default rule: refuse
        assert llm.generate(["hello"])[0].text == answer_text("hello")
        assert len(records) == 12 and {r.missing_letters for r in records} == {"refuse"}
        assert missing_letter_refusal(records).startswith("item 'b' (option order [0, 1, 2]): no score for letter C")
        frame, refused = mjd_frames(records)
        assert frame.empty and "item 'b'" in refused["softmax"] and "letter(s) C" in refused["softmax"]

        # the same registration with the floor rule: the MJD is recomputed from the cached answers
        sent = len(server.bodies)
        assert hlv(*argv, "--option", "missing_letters=floor")[0] == 0
        llm, records = judged(JudgeOptions(orders=1, missing_letters="floor"))
        assert len(server.bodies) == sent  # no request: the rule is not part of the call
        mjd = mjd_frames(records)[0].set_index("uid")[["p_e", "p_n", "p_c"]]
        assert list(mjd.loc["a"]) == pytest.approx(_softmax_t20(-0.01, -5.0, -20.0), abs=1e-12)
        assert list(mjd.loc["b"]) == pytest.approx(_softmax_t20(-0.01, -5.0, -12.0), abs=1e-12)
        assert [round(p, 3) for p in mjd.loc["b"]] == [0.430, 0.335, 0.236]  # the numbers
    assert len(server.bodies) == 13 and server.auth_headers == [None] * 13  # 12 judgments + 1 generation


def test_a_base_url_with_credentials_is_refused_in_one_line_and_not_stored(hlv, tmp_path):
    code, out, err = hlv("llm", "add", "leaky", "--backend", "openai", "--model", "m",
                         "--option", "base_url=http://user:sk-leaked-9f8e@vllm:8000/v1")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "api_key_env" in err and "sk-leaked-9f8e" not in err
    assert "leaky" not in _listed(hlv)
    assert not any(b"sk-leaked-9f8e" in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())


def test_a_bad_missing_letters_rule_is_refused_in_one_line(hlv):
    code, _, err = hlv("llm", "add", "api", "--backend", "openai", "--model", "m", "--option", "api_key_env=",
                       "--option", "missing_letters=zero")
    assert code == 2 and err.strip() == ("hlv llm add: LLM 'api': option missing_letters='zero': expected one of "
                                         "refuse, renormalize, floor")
    assert "api" not in _listed(hlv)
