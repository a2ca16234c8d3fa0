"""The UI, tested as a person uses it: `hlv ui`, the asset graph, a partition materialized from the asset page,
its run followed to success, and the partition's metadata read back; then the Jobs page (the profile's main
job), the Automation page (the registry schedule and its cron), and two minutes of automation ticks after that
cheap click without a single failed run. Screenshots in test-output/ui/.

`hlv_items` (and its raw inputs) are materialized first through the Python API against the same DAGSTER_HOME,
while the server starts. `HLV_UPDATE_DOCS_IMAGES=1` also copies the asset-graph screenshot to
docs/images/asset-graph.png (the README's picture).
"""

import os
import re
import shutil
import sqlite3
import time

import dagster as dg
import pytest
import yaml

from hlv_assets.cli.run import Step, run_steps
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets_tests.ui.conftest import UIServer, wait_for_server

ASSET, PARTITION = "baseline_distributions", "uniform"
RUN_TIMEOUT_S = 150


def _location_name() -> str:
    entry = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    return entry.get("location_name") or entry["module_name"]


def _dismiss_onboarding(page, wait_ms: int = 1_000) -> None:
    """A fresh instance greets its first visitor with a community dialog; a person clicks Skip."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=wait_ms)
    except PlaywrightTimeout:
        return  # not shown (this visitor already answered it)
    skip.click()


def _wait_for_run(instance: dg.DagsterInstance, run_id_prefix: str) -> dg.DagsterRun:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = [r for r in instance.get_runs(limit=20) if r.run_id.startswith(run_id_prefix)]
        if runs and runs[0].is_finished:
            return runs[0]
        time.sleep(1)
    pytest.fail(f"run {run_id_prefix} did not finish within {RUN_TIMEOUT_S}s")


def test_ui_materializes_a_partition_and_shows_its_metadata(ui_server: UIServer, browser, screenshots,
                                                              monkeypatch):
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = time.monotonic() - clock
        clock = time.monotonic()

    # 1. The upstream data through the Python API, against the instance the UI serves.
    for key, value in ui_server.env.items():
        if key.startswith(("DAGSTER_", "HLV_")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("HLV_DB_URL", raising=False)
    instance = dg.DagsterInstance.get()
    report = run_steps([Step("chaosnli_mnli"), Step("varierr_nli"), Step("hlv_items")], instance=instance)
    assert all(ok for _, ok, _ in report)
    lap("raw via Python API")
    wait_for_server(ui_server)
    lap("webserver up")

    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        # 2. The asset graph (global lineage, one box per group) and the baselines group.
        page.goto(f"{ui_server.url}/asset-groups", wait_until="domcontentloaded")
        _dismiss_onboarding(page, wait_ms=5_000)
        for group in ("raw", "baselines", "explanations", "judgments"):
            page.get_by_text(group, exact=True).filter(visible=True).first.wait_for()
        page.get_by_text("fetching statuses").first.wait_for(state="detached", timeout=60_000)
        page.screenshot(path=screenshots / "01-asset-graph.png")
        page.goto(f"{ui_server.url}/locations/{_location_name()}/asset-groups/baselines",
                  wait_until="domcontentloaded")
        page.get_by_text(ASSET, exact=True).filter(visible=True).first.wait_for()
        page.get_by_text("distribution_comparison", exact=True).filter(visible=True).first.wait_for()
        page.get_by_text(re.compile(r"^Loading")).first.wait_for(state="detached")
        page.screenshot(path=screenshots / "02-baselines-group.png")
        lap("graph pages")

        # 3. Materialize one partition from the asset page, as a person would.
        page.goto(f"{ui_server.url}/assets/{ASSET}", wait_until="domcontentloaded")
        _dismiss_onboarding(page)
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Select a partition or create one").click()
        page.keyboard.type(PARTITION)
        page.get_by_text(PARTITION, exact=True).filter(visible=True).last.click()
        page.keyboard.press("Escape")  # closes the partition list, not the dialog
        launch = dialog.get_by_role("button", name="Launch 1 run")
        launch.wait_for()
        page.screenshot(path=screenshots / "03-launch-dialog.png")
        launch.click()
        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        toast.wait_for()
        run_prefix = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
        # The toast's own View button leaves with the toast: open the run from the Runs page instead.
        page.goto(f"{ui_server.url}/runs", wait_until="domcontentloaded")
        page.get_by_role("link", name=run_prefix).first.click()
        page.wait_for_url(re.compile(rf"/runs/{run_prefix}"))
        lap("launch from the UI")

        # 4. The run, followed to the end: in the instance and on its page.
        run = _wait_for_run(instance, run_prefix)
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run.run_id} {run.status}"
        assert run.tags.get("dagster/from_ui") == "true" and run.tags.get("dagster/partition") == PARTITION
        assert run.tags.get("hlv/profile") == "tiny"  # the settings resource records them on every run
        page.get_by_text("Success").filter(visible=True).first.wait_for()
        page.get_by_text("RUN_SUCCESS").filter(visible=True).first.wait_for()
        page.mouse.move(0, 0)  # no hover tooltip over the event log
        page.screenshot(path=screenshots / "04-run-success.png")
        lap("run to success")

        # 5. The partition's metadata, as the asset page shows it.
        page.goto(f"{ui_server.url}/assets/{ASSET}?view=partitions&partition={PARTITION}",
                  wait_until="domcontentloaded")
        page.get_by_text("0.333333").filter(visible=True).first.wait_for()
        body = page.inner_text("body")
        for expected in ("rows", "341", "sha256", "preview", "store_keys", run_prefix):
            assert expected in body, f"{expected!r} not on the partition page"
        page.screenshot(path=screenshots / "05-partition-metadata.png", full_page=True)
        lap("metadata page")
    except Exception:
        page.screenshot(path=screenshots / "failure.png")
        print(ui_server.log_tail())
        raise
    finally:
        page.close()

    # What the run wrote is in the store (SQLite under HLV_HOME, the default without HLV_DB_URL).
    with sqlite3.connect(ui_server.hlv_home / "hlv.db") as conn:
        (rows,) = conn.execute("SELECT count(*) FROM distribution WHERE asset_key = ? AND partition_key = ? "
                               "AND current AND run_id = ?", (ASSET, PARTITION, run.run_id)).fetchone()
    assert rows == 341

    if os.environ.get("HLV_UPDATE_DOCS_IMAGES") == "1":
        target = REPO_ROOT / "docs" / "images" / "asset-graph.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshots / "01-asset-graph.png", target)
    print("\n" + ", ".join(f"{k}: {v:.1f}s" for k, v in timings.items()) + f"; total {sum(timings.values()):.1f}s")


AUTOMATION_WATCH_S = 120


def test_jobs_schedule_and_two_minutes_of_automation_without_a_failed_run(ui_server: UIServer, browser,
                                                                          screenshots, monkeypatch):
    """After the launch above, automation ticks (every 15 s) for two minutes: it may start runs, but never
    one certain to fail (no unconfigured encoder, no judge that cannot judge), so no run fails."""
    for key, value in ui_server.env.items():
        if key.startswith(("DAGSTER_", "HLV_")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("HLV_DB_URL", raising=False)
    instance = dg.DagsterInstance.get()
    wait_for_server(ui_server)
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{ui_server.url}/locations/{_location_name()}/jobs", wait_until="domcontentloaded")
        _dismiss_onboarding(page)
        page.get_by_text("main_tiny", exact=True).filter(visible=True).first.wait_for()
        page.screenshot(path=screenshots / "06-jobs.png")
        page.goto(f"{ui_server.url}/automation", wait_until="domcontentloaded")
        page.get_by_text("registry_refresh_schedule", exact=True).filter(visible=True).first.wait_for()
        page.get_by_text("At 04:00 AM UTC").filter(visible=True).first.wait_for()  # cron 0 4 * * *
        page.screenshot(path=screenshots / "07-automation.png")
        time.sleep(max(0.0, AUTOMATION_WATCH_S - (time.monotonic() - started)))
        page.goto(f"{ui_server.url}/runs", wait_until="domcontentloaded")
        page.get_by_text(re.compile(r"^Loading")).first.wait_for(state="detached")
        page.screenshot(path=screenshots / "08-runs-after-automation.png")
    except Exception:
        page.screenshot(path=screenshots / "failure-automation.png")
        print(ui_server.log_tail())
        raise
    finally:
        page.close()
    ticks = instance.get_ticks(*_automation_origin(instance)) if _automation_origin(instance) else []
    runs = instance.get_runs(limit=200)
    failed = [f"{r.run_id[:8]} {r.tags.get('dagster/partition', '')} {sorted(r.asset_selection or [])}"
              for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    assert not failed, f"runs failed after the click: {failed}\n{ui_server.log_tail()}"
    assert len(ticks) >= 2, f"automation ticked {len(ticks)} times in {AUTOMATION_WATCH_S}s"


def _automation_origin(instance: dg.DagsterInstance):
    """(origin id, selector id) of the automation sensor's ticks in this instance, if it has ticked."""
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.name == "hlv_automation_sensor":
            return state.instigator_origin_id, state.selector_id
    return None
