"""Code versions and data versions make a changed input visible: one human explanation edited in a copy of the
items file (HLV_DATA_DIR, HLV_VERIFY_DATA=record) makes exactly the MJD partitions that read it stale in
Dagster's own stale-status resolver, and `hlv audit` follows: before the rerun it shows the row as stale and
the file on disk as changed, after it the new hash in the row's chain and the old row in its history."""

from __future__ import annotations

import io
import json
import shutil

import dagster as dg
import pytest

from hlv_assets.cli.run import Step, load_definitions, run_steps
from hlv_assets.lib import raw
from hlv_assets.lib.datasource import pinned_files

JUDGE = "smollm2-135m"  # the tiny profile swaps it for a random tiny model
NONE, HUMAN = (str(dg.MultiPartitionKey({"judge": JUDGE, "explanations": s})) for s in ("none", "human"))


class Stale:
    """Dagster's stale status of one asset partition, resolved afresh (the resolver caches)."""

    def __init__(self, instance, defs):
        self.instance, self.graph = instance, defs.resolve_asset_graph()

    def __call__(self, asset: str, partition: str | None = None) -> tuple[str, list[str]]:
        from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
        from dagster._core.definitions.data_version import CachingStaleStatusResolver
        from dagster._time import get_current_datetime

        view = AssetGraphView(
            temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
            instance=self.instance,
            asset_graph=self.graph,
        )
        resolver = CachingStaleStatusResolver(self.instance, self.graph, loading_context=view)
        key = dg.AssetKey(asset)
        causes = resolver.get_stale_root_causes(key, partition)
        return resolver.get_status(key, partition).value, sorted(
            f"{c.asset_key.to_user_string()}[{c.partition_key or ''}] {c.category.value}" for c in causes
        )


@pytest.fixture(scope="module")
def graph(tmp_path_factory, data_dir):
    """A copy of the data pack's three item files, a persistent instance (for `hlv audit`), and the chain
    raw -> baselines -> explanation sets `none`/`human` -> MJDs -> the human MJD's comparison row."""
    from hlv_assets.cli.run import ensure_dagster_home
    from hlv_assets.defs.llm_resource import LLMResource
    from hlv_assets.defs.partition_sync import sync_partitions
    from hlv_assets.defs.resources import ResultStoreResource
    from hlv_assets.defs.resources_defs import default_resources
    from hlv_assets.store.db import get_engine

    tmp = tmp_path_factory.mktemp("staleness")
    pack = tmp / "pack"
    for rel in (raw.CHAOSNLI_MNLI, raw.VARIERR, raw.HLV_ITEMS):
        (pack / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, pack / rel)
    url = f"sqlite:///{tmp / 'hlv.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HLV_DATA_DIR", str(pack))
        env.setenv("HLV_VERIFY_DATA", "record")  # an edited copy is used and its hash recorded
        env.setenv("HLV_HOME", str(tmp / "home"))
        env.setenv("HLV_DB_URL", url)
        env.setenv("DAGSTER_HOME", str(tmp / "dagster"))
        ensure_dagster_home()
        instance = dg.DagsterInstance.get()
        defs = load_definitions()
        # the store passed explicitly: get_engine() without a URL caches the first store the process saw
        resources = {
            **default_resources(),
            "results": ResultStoreResource(db_url=url),
            "llms": LLMResource(db_url=url),
        }
        sync_partitions(instance, get_engine(url))

        def run(*steps: Step) -> None:
            run_steps(steps, instance=instance, defs=defs, resources=resources, out=io.StringIO())

        run(
            Step("chaosnli_mnli"),
            Step("varierr_nli"),
            Step("hlv_items"),
            *(
                Step("baseline_distributions", b)
                for b in ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform")
            ),
            Step("explanation_sets", "none"),
            Step("explanation_sets", "human"),
            Step("mjd", f"{JUDGE}/none"),
            Step("mjd", f"{JUDGE}/human"),
            Step("mjd_comparison", f"{JUDGE}/human"),
        )
        yield instance, defs, run, pack, url, env


def _edit_first_explanation(path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    item = json.loads(lines[0])
    item["comments"][0][0] = "An edited explanation: nothing in the context says who the lepers are."
    lines[0] = json.dumps(item, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    from hlv_assets.lib.datasource import sha256_file

    return sha256_file(path)


def _audit(row_id: str) -> dict:
    from contextlib import redirect_stdout

    from hlv_assets import cli

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert cli.main(["audit", row_id, "--format", "json"]) == 0
    return json.loads(buffer.getvalue())


def _items_file(report: dict) -> dict:
    return next(f for f in report["raw_inputs"] if f["path"] == raw.HLV_ITEMS)


def test_a_new_code_version_makes_stale(graph):
    """A new code version (a changed prompt template bumps MJD_VERSION) shows as a CODE cause."""
    instance, defs, *_ = graph
    bumped = defs.map_asset_specs(
        func=lambda spec: (
            spec.replace_attributes(code_version="mjd-changed-v1+tiny")
            if spec.key == dg.AssetKey("mjd")
            else spec
        )
    )
    stale = Stale(instance, bumped)
    for partition in (NONE, HUMAN):
        assert stale("mjd", partition) == ("STALE", [f"mjd[{partition}] CODE"])
    # Dagster 1.13 reports direct causes only: the comparison row turns stale once the MJD is rebuilt with
    # a new data version (eager automation does that rebuild)
    assert stale("mjd_comparison", HUMAN) == ("FRESH", [])
    assert Stale(instance, defs)("mjd", HUMAN) == ("FRESH", [])


def test_changed_explanation_makes_the_mjds_reading_it_stale(graph):
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore

    instance, defs, run, pack, url, _env = graph
    stale = Stale(instance, defs)
    for asset, partition in (
        ("hlv_items", None),
        ("explanation_sets", "human"),
        ("mjd", NONE),
        ("mjd", HUMAN),
        ("mjd_comparison", HUMAN),
    ):
        assert stale(asset, partition) == ("FRESH", []), (asset, partition)
    [row] = [
        r
        for r in ResultStore(get_engine(url)).current_rows("distribution_comparison")
        if r.data.get("source") == "mjd" and r.data.get("explanations") == "human"
    ]
    before = _audit(row.row_id)
    assert before["written_by"]["stale"]["status"] == "FRESH" and before["freshness"]["up_to_date"]
    pinned = pinned_files()[raw.HLV_ITEMS].sha256
    assert _items_file(before)["recorded_sha256"] == pinned == _items_file(before)["current_sha256"]

    edited = _edit_first_explanation(pack / raw.HLV_ITEMS)
    assert edited != pinned
    run(Step("hlv_items"))
    # the items changed: what reads them directly is stale (Dagster 1.13 reports direct causes only)
    for source in ("none", "human"):
        assert stale("explanation_sets", source) == ("STALE", ["hlv_items[] DATA"])
    assert stale("mjd", HUMAN) == ("FRESH", [])  # nothing it read has changed yet

    run(Step("explanation_sets", "none"), Step("explanation_sets", "human"))
    # only the human explanations changed: the MJDs reading them are stale, the plain-prompt MJD is not
    assert stale("explanation_sets", "none") == stale("explanation_sets", "human") == ("FRESH", [])
    assert stale("mjd", NONE) == ("FRESH", [])
    assert stale("mjd", HUMAN) == ("STALE", ["explanation_sets[human] DATA"])
    assert stale("mjd_comparison", HUMAN) == ("FRESH", [])  # direct causes only: its MJD is unchanged so far

    # `hlv audit` of the human MJD's row: stale now, why, and which file changed under it
    report = _audit(row.row_id)
    assert report["written_by"]["stale"]["status"] == "FRESH"  # Dagster's view of the writing partition
    assert report["freshness"]["up_to_date"] is False  # the audit's view of the whole chain
    reasons = report["freshness"]["reasons"]
    assert any(r.startswith(f"mjd[{JUDGE}/human] is stale") for r in reasons), reasons
    assert f"explanation_sets[human] was rebuilt after mjd[{JUDGE}/human] read it" in reasons
    assert any(r.startswith("hlv_items was rebuilt after") for r in reasons), reasons
    assert report["mjd"]["stale"]["status"] == "STALE"
    assert any("explanation_sets" in c for c in report["mjd"]["stale"]["causes"])
    items = _items_file(report)
    assert (items["recorded_sha256"], items["matches_pinned"], items["current_sha256"]) == (
        pinned,
        True,
        edited,
    )
    sets = next(n for n in report["chain"] if n["asset"] == "explanation_sets")
    assert (
        sets["partition"] == "human" and sets["latest"] is False
    )  # the run read a superseded explanation set

    run(Step("mjd", f"{JUDGE}/human"), Step("mjd_comparison", f"{JUDGE}/human"))
    assert stale("mjd", HUMAN) == stale("mjd_comparison", HUMAN) == ("FRESH", [])
    after = _audit(row.row_id)
    # whatever is left is true: the HJD baselines in the row's chain were built from the items before the edit
    # (seen once mjd_comparison maps its baseline dependency with AllPartitionMapping)
    for reason in after["freshness"]["reasons"]:
        assert reason.startswith(
            ("baseline_distributions[", "hlv_items was rebuilt after baseline_distributions[")
        ), reason
    for node in after["chain"]:
        if node["asset"] in ("mjd_comparison", "mjd", "explanation_sets"):
            assert node["latest"] and node["stale"]["status"] == "FRESH", node["asset"]
    items = _items_file(after)
    assert (items["recorded_sha256"], items["matches_pinned"], items["current_sha256"]) == (
        edited,
        False,
        edited,
    )
    assert [h["current"] for h in after["history"]] == [True, False]  # the earlier version is kept
    assert after["history"][0]["run_id"] != after["history"][1]["run_id"]
    assert all(i.get("matches") is not False for n in after["chain"] for i in n["inputs"])
