"""Partitions per role, and the one place that turns a CLI partition string into a Dagster key.

* `generators` (dynamic): active registry LLMs that can `generate`; keys `llm_generations`.
* `judges` (dynamic): active registry LLMs with `label_logits`; keys the judging analyses.
* `explanations` (dynamic): `none`, `human`, `<generator>.<set>` (added by `llm_generations`).
* `judgments` = judge x explanations (dimensions `judge`, `explanations`): `mjd`, `mjd_comparison`,
  `finetune_<encoder>`. Dagster's key string sorts by dimension name: `<explanations>|<judge>`.
* item sets: `item_sets`, `item_set_sources` (`<source>@<set>`), generator x item_set, judge x source.
* `baselines` (static): the five baselines.

`defs/partition_sync.py` keeps the dynamic ones equal to what the registry and configuration allow. Every
CLI subcommand reads a partition with `parse_partition` (both `<llm>/<other>` and Dagster's key string) and
shows one with `display_partition`.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from hlv_assets.lib.distributions import BASELINES

generator_partitions = dg.DynamicPartitionsDefinition(name="generators")
judge_partitions = dg.DynamicPartitionsDefinition(name="judges")
explanation_partitions = dg.DynamicPartitionsDefinition(name="explanations")
judgment_partitions = dg.MultiPartitionsDefinition({"judge": judge_partitions, "explanations": explanation_partitions})
baseline_partitions = dg.StaticPartitionsDefinition(list(BASELINES))

item_set_partitions = dg.DynamicPartitionsDefinition(name="item_sets")
item_set_source_partitions = dg.DynamicPartitionsDefinition(name="item_set_sources")
item_set_generation_partitions = dg.MultiPartitionsDefinition(
    {"generator": generator_partitions, "item_set": item_set_partitions})
# the source dimension is named `explanations` like the 341's, so `--partition <judge>/<source>@<set>` reads alike
item_set_judgment_partitions = dg.MultiPartitionsDefinition(
    {"judge": judge_partitions, "explanations": item_set_source_partitions})

#: Explanation sources that exist without any generator.
BUILTIN_SOURCES = ("none", "human")
#: The dimension of a two-dimensional definition written first in the CLI form `<llm>/<other>`.
LLM_DIMENSIONS = ("judge", "generator")


def judgment_key(judge: str, explanations: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"judge": judge, "explanations": explanations})


def item_set_generation_key(generator: str, item_set: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"generator": generator, "item_set": item_set})


def _dimension_names(pdef: dg.MultiPartitionsDefinition) -> tuple[str, str]:
    """(the LLM dimension, the other one) of a two-dimensional definition."""
    names = [d.name for d in pdef.partitions_defs]
    first = next(n for n in names if n in LLM_DIMENSIONS)
    return first, next(n for n in names if n != first)


def _multi_parser(pdef: dg.MultiPartitionsDefinition) -> Callable[[str], dg.MultiPartitionKey]:
    llm_dim, other_dim = _dimension_names(pdef)

    def parse(value: str) -> dg.MultiPartitionKey:
        if "/" in value:
            llm, other = value.split("/", 1)
            return dg.MultiPartitionKey({llm_dim: llm, other_dim: other})
        if "|" in value:
            return pdef.get_partition_key_from_str(value)
        raise ValueError(f"partition {value!r}: expected <{llm_dim}>/<{other_dim}> (or Dagster's "
                         f"'{'|'.join(sorted((llm_dim, other_dim)))}' key)")

    return parse


def parse_explanation_source(value: str) -> str:
    """`llama3/varierr-lg-first` (as the README writes it) -> `llama3.varierr-lg-first`; other keys unchanged."""
    if "/" in value:
        generator, set_name = value.split("/", 1)
        return f"{generator}.{set_name}"
    return value


def parse_item_set_source(value: str) -> str:
    """`smollm2-135m/lf-first@myset` -> `smollm2-135m.lf-first@myset`; other keys unchanged."""
    return parse_explanation_source(value)


def _identity(value: str) -> str:
    return value


#: One parser per partitions definition (by the identity of the definition object).
PARSERS: dict[int, Callable[[str], str | dg.MultiPartitionKey]] = {
    id(judgment_partitions): _multi_parser(judgment_partitions),
    id(item_set_judgment_partitions): _multi_parser(item_set_judgment_partitions),
    id(item_set_generation_partitions): _multi_parser(item_set_generation_partitions),
    id(explanation_partitions): parse_explanation_source,
    id(item_set_source_partitions): parse_item_set_source,
}


def parse_partition(value: str, partitions_def: dg.PartitionsDefinition | None = None) -> str | dg.MultiPartitionKey:
    """A CLI partition string -> the Dagster key of `partitions_def`. Without a definition: `<a>/<b>` and
    `<b>|<a>` are read as a judgment (judge x explanations), anything else is returned as it is."""
    if partitions_def is None:
        return PARSERS[id(judgment_partitions)](value) if ("/" in value or "|" in value) else value
    parser = PARSERS.get(id(partitions_def))
    if parser is None and isinstance(partitions_def, dg.MultiPartitionsDefinition):
        parser = _multi_parser(partitions_def)
    return (parser or _identity)(value)


def display_partition(key: str | dg.MultiPartitionKey | None,
                      partitions_def: dg.PartitionsDefinition | None = None) -> str:
    """A Dagster key -> the CLI form `<llm>/<other>` (keys of one dimension unchanged). Without a definition a
    `a|b` string is read as a judgment key (`<explanations>|<judge>`)."""
    if not key:
        return ""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        mkey = key if isinstance(key, dg.MultiPartitionKey) else partitions_def.get_partition_key_from_str(key)
        llm_dim, other_dim = _dimension_names(partitions_def)
        dims = mkey.keys_by_dimension
        return f"{dims[llm_dim]}/{dims[other_dim]}"
    if isinstance(key, dg.MultiPartitionKey):
        dims = dict(key.keys_by_dimension)
        llm_dim = next((d for d in LLM_DIMENSIONS if d in dims), None)
        if llm_dim is not None:
            llm = dims.pop(llm_dim)
            return f"{llm}/{next(iter(dims.values()))}"
        return str(key)
    if "|" in key:
        explanations, judge = key.split("|", 1)
        return f"{judge}/{explanations}"
    return key
