"""The code location loads, its asset graph is what we expect, and every distribution asset is gated."""

import dagster as dg

from hlv_assets.runner import load_definitions

#: Snapshot of the core asset keys (other domains add to it; a removed or renamed asset fails here).
CORE_ASSETS = {
    "chaosnli_mnli", "varierr_nli", "hlv_items", "chaos_dev", "chaos_test", "anli_test", "released_generations",
    "baseline_distributions", "distribution_comparison", "llm_generations", "explanation_sets", "mjd",
    "mjd_comparison", "replacement_curves", "preference_selection", "explanation_variability", "ternary_plots",
    "paper_report",
}


def test_definitions_load_with_the_core_assets():
    defs = load_definitions()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert CORE_ASSETS <= keys
    for name in ("settings", "data", "results", "io_manager", "llms"):
        assert name in defs.resources


def test_every_distribution_asset_has_a_blocking_gx_check():
    graph = load_definitions().resolve_asset_graph()
    for name in ("baseline_distributions", "mjd"):
        checks = {c.name: c for c in graph.get(dg.AssetKey(name)).check_keys and
                  [graph.get_check_spec(k) for k in graph.get(dg.AssetKey(name)).check_keys]}
        assert "distribution_suite" in checks and checks["distribution_suite"].blocking


def test_judgments_read_one_explanation_source():
    graph = load_definitions().resolve_asset_graph()
    node = graph.get(dg.AssetKey("mjd"))
    assert set(node.partitions_def.partition_dimension_names) == {"llm", "explanations"}
    mapping = node.partition_mappings[dg.AssetKey("explanation_sets")]
    assert isinstance(mapping, dg.MultiToSingleDimensionPartitionMapping)
