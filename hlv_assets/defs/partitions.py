"""Partitions: `llm` (dynamic: generators and judges), `explanations` (dynamic: `none`, `human`,
`<generator>.<set>`), their product for judgments, and the five baselines."""

from __future__ import annotations

import dagster as dg

from hlv_assets.lib.distributions import BASELINES

llm_partitions = dg.DynamicPartitionsDefinition(name="llm")
explanation_partitions = dg.DynamicPartitionsDefinition(name="explanations")
judgment_partitions = dg.MultiPartitionsDefinition({"llm": llm_partitions, "explanations": explanation_partitions})
baseline_partitions = dg.StaticPartitionsDefinition(list(BASELINES))

#: Explanation sources that exist without any generator.
BUILTIN_SOURCES = ("none", "human")


def judgment_key(llm: str, explanations: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"llm": llm, "explanations": explanations})


def parse_partition(value: str) -> str | dg.MultiPartitionKey:
    """CLI form `<llm>/<explanations>` (or Dagster's own `explanations|llm` string) -> a partition key."""
    if "/" in value:
        llm, explanations = value.split("/", 1)
        return judgment_key(llm, explanations)
    if "|" in value:
        explanations, llm = value.split("|", 1)
        return judgment_key(llm, explanations)
    return value


def display_partition(key: str | None) -> str:
    """Dagster's `explanations|llm` string -> `<llm>/<explanations>`; other keys unchanged."""
    if key and "|" in key:
        explanations, llm = key.split("|", 1)
        return f"{llm}/{explanations}"
    return key or ""
