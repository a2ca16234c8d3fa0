"""Group `raw`: the real datasets, read from the data source and verified against their pinned sha256."""


import dagster as dg
import pandas as pd

from hlv_assets.defs.lineage import combine_sha256, frame_metadata, frame_sha256, versioned
from hlv_assets.defs.resources import DataSourceResource
from hlv_assets.lib import raw
from hlv_assets.lib.datasource import pinned_files
from hlv_assets.lib.released import RELEASED_MODELS, read_released_generations

RAW = dict(group_name="raw", kinds={"pandas"}, io_manager_key="io_manager")


def _output(frame: pd.DataFrame, inputs: dict[str, str]) -> dg.Output:
    return dg.Output(frame, metadata=frame_metadata(frame, inputs), data_version=dg.DataVersion(frame_sha256(frame)))


@dg.asset(**RAW, code_version=versioned("chaosnli-v2"))
def chaosnli_mnli(data: DataSourceResource) -> dg.Output[pd.DataFrame]:
    """ChaosNLI-MNLI: 1,599 items with the 100-vote HJD, vote counts and the 5 original MNLI labels."""
    src = data.source()
    frame = raw.load_chaosnli(src.path(raw.CHAOSNLI_MNLI))
    return _output(frame, {raw.CHAOSNLI_MNLI: src.sha256(raw.CHAOSNLI_MNLI)})


@dg.asset(**RAW, code_version=versioned("varierr-v1"))
def varierr_nli(data: DataSourceResource) -> dg.Output[pd.DataFrame]:
    """VariErr NLI: 500 items, round-1 label counts, explanations with their validity judgments."""
    src = data.source()
    frame = raw.load_varierr(src.path(raw.VARIERR))
    return _output(frame, {raw.VARIERR: src.sha256(raw.VARIERR)})


@dg.asset(**RAW, code_version=versioned("hlv-items-v1"))
def hlv_items(data: DataSourceResource, chaosnli_mnli: pd.DataFrame, varierr_nli: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """The 341 items (SPEC §1): uid recovered by the join, HJD, VariErr and MNLI counts, 4 human explanations."""
    src = data.source()
    frame = raw.load_hlv_items(src.path(raw.HLV_ITEMS), chaosnli_mnli, varierr_nli)
    return _output(frame, {raw.HLV_ITEMS: src.sha256(raw.HLV_ITEMS)})


def _split_asset(name: str, rel: str, split: str):
    # a factory's docstring would be the same for both splits: the description names the split and its file
    description = (f"ChaosNLI-MNLI {split} split of the fine-tuning recipe (629 items, soft ChaosNLI HJD targets), "
                   f"read from `{rel}` and joined to `chaosnli_mnli` for the uid; an input of every `finetune_*` asset.")

    @dg.asset(name=name, **RAW, code_version=versioned("chaos-split-v2"), description=description)
    def _asset(data: DataSourceResource, chaosnli_mnli: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        src = data.source()
        frame = raw.load_chaos_split(src.path(rel), chaosnli_mnli, split)
        return _output(frame, {rel: src.sha256(rel)})

    return _asset


chaos_dev = _split_asset("chaos_dev", raw.CHAOS_DEV, "dev")
chaos_test = _split_asset("chaos_test", raw.CHAOS_TEST, "test")


@dg.asset(**RAW, code_version=versioned("anli-v1"))
def anli_test(data: DataSourceResource) -> dg.Output[pd.DataFrame]:
    """ANLI v1.0 test, rounds R1/R2/R3 (1,000 / 1,000 / 1,200) with the round as a column."""
    src = data.source()
    frames = [raw.load_anli(src.path(raw.anli_path(r)), r) for r in raw.ANLI_ROUNDS]
    return _output(pd.concat(frames, ignore_index=True), {raw.anli_path(r): src.sha256(raw.anli_path(r))
                                                           for r in raw.ANLI_ROUNDS})


@dg.asset(**RAW, code_version=versioned("released-v1"))
def released_generations(data: DataSourceResource) -> dg.Output[pd.DataFrame]:
    """The papers' published Llama3 / GPT-4o / Mixtral answers: one row per (model, item, label), raw text kept."""
    src = data.source()
    rels = sorted(p for p in pinned_files() if "-raw-output/" in p)
    inputs = {rel: src.sha256(rel) for rel in rels}  # verifies (or fetches) every file first
    root = src.root if src.root is not None else src.cache_dir
    rows = [{"llm": slug, **rec} for slug in RELEASED_MODELS for rec in read_released_generations(root, slug)]
    frame = pd.DataFrame(rows)
    return _output(frame, {"raw-output files": str(len(inputs)),
                           "raw-output sha256": combine_sha256(inputs)})
