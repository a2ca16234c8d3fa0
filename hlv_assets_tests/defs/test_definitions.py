"""The code location loads, its asset graph is what we expect, and every distribution asset is gated."""

import dagster as dg

from hlv_assets.cli.run import load_definitions

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
    assert set(node.partitions_def.partition_dimension_names) == {"judge", "explanations"}
    judges = {d.name: d.partitions_def.name for d in node.partitions_def.partitions_defs}
    assert judges == {"judge": "judges", "explanations": "explanations"}
    assert graph.get(dg.AssetKey("llm_generations")).partitions_def.name == "generators"
    mapping = node.partition_mappings[dg.AssetKey("explanation_sets")]
    assert isinstance(mapping, dg.MultiToSingleDimensionPartitionMapping)


def test_every_partitions_definition_reads_both_partition_forms():
    from hlv_assets.defs import partitions as P

    cases = [  # (definition, CLI form, Dagster's key string, the key)
        (P.judgment_partitions, "smollm2-135m/human", "human|smollm2-135m", P.judgment_key("smollm2-135m", "human")),
        (P.item_set_judgment_partitions, "j/none@myset", "none@myset|j", P.judgment_key("j", "none@myset")),
        (P.item_set_generation_partitions, "g/myset", "g|myset", P.item_set_generation_key("g", "myset")),
        (P.explanation_partitions, "llama3/varierr-lg-first", "llama3.varierr-lg-first", "llama3.varierr-lg-first"),
        (P.item_set_source_partitions, "g/lf-first@myset", "g.lf-first@myset", "g.lf-first@myset"),
        (P.generator_partitions, "llama3", "llama3", "llama3"),
        (P.baseline_partitions, "uniform", "uniform", "uniform"),
    ]
    for pdef, cli_form, dagster_form, key in cases:
        for form in (cli_form, dagster_form):
            parsed = P.parse_partition(form, pdef)
            assert parsed == key and str(parsed) == str(key), (form, parsed)
        if isinstance(key, dg.MultiPartitionKey):
            assert P.display_partition(key, pdef) == cli_form
            assert P.display_partition(str(key), pdef) == cli_form
