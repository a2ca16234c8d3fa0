"""A snapshot of the whole graph: assets (group, partitions, deps, checks, automation), jobs, schedules, sensors.

Any change to the graph fails here with a readable diff, so it is reviewed like code. After an intended change:
`HLV_UPDATE_SNAPSHOT=1 pytest hlv_assets_tests/defs/test_graph_snapshot.py` rewrites `graph_snapshot.json`.
The definitions are built in a subprocess under the tiny profile with a fixed environment (no BERT/RoBERTa
checkpoint, default cron and statuses), so what the session imported before cannot change the result.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")
#: Variables that change the graph; unset in the subprocess so the snapshot is deterministic.
GRAPH_VARIABLES = ("HLV_BERT_MNLI", "HLV_ROBERTA_MNLI", "HLV_MNLI_TRAIN", "HLV_MNLI_DEV", "HLV_REGISTRY_CRON",
                   "HLV_REGISTRY_SENSOR_STATUS",
                   "HLV_REGISTRY_SCHEDULE_STATUS", "HLV_AUTOMATION_STATUS", "HLV_AUTOMATION_SECONDS",
                   "HLV_REGISTRY_SENSOR_SECONDS", "HLV_AUTOMATION_MAX_PER_TICK", "HLV_DB_URL", "DAGSTER_HOME")


def _partitions(pdef) -> dict | None:
    import dagster as dg

    if pdef is None:
        return None
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return {"type": "multi", "dimensions": {d.name: _partitions(d.partitions_def) for d in pdef.partitions_defs}}
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return {"type": "dynamic", "name": pdef.name}
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        return {"type": "static", "keys": pdef.get_partition_keys()}
    return {"type": type(pdef).__name__}


def _condition(condition) -> str | None:
    """`name(child, ...)`; a node Dagster labels (`eager`, `any_deps_updated`, ...) as its label, ours (labels
    from defs/automation.py) as `label: name(children)` so a change inside them shows."""
    from hlv_assets.defs import automation

    if condition is None:
        return None
    label = condition.get_label()
    ours = label in automation.CONDITION_LABELS
    if label and not ours:
        return label
    children = [_condition(c) for c in condition.children]
    text = f"{condition.name}({', '.join(children)})" if children else condition.name
    return f"{label}: {text}" if ours else text


def _job(job) -> dict:
    out = {"tags": dict(sorted((job.tags or {}).items())), "description": job.description or ""}
    keys = job.asset_layer.executable_asset_keys if job.asset_layer else set()
    if keys:
        out["assets"] = sorted(k.to_user_string() for k in keys)
    else:
        out["ops"] = sorted(job.graph.node_dict)
    return out


def build() -> dict:
    """The snapshot of the code location as the environment defines it now."""
    from hlv_assets.cli.run import load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        checks = []
        for check_key in sorted(node.check_keys, key=lambda k: k.name):
            spec = graph.get_check_spec(check_key)
            checks.append({"name": check_key.name, "blocking": spec.blocking,
                           "partitions": _partitions(graph.get(check_key).partitions_def)})
        deps = {parent.to_user_string(): type(node.partition_mappings[parent]).__name__
                if parent in node.partition_mappings else "default" for parent in node.parent_keys}
        assets[key.to_user_string()] = {"group": node.group_name, "partitions": _partitions(node.partitions_def),
                                        "deps": dict(sorted(deps.items())), "checks": checks,
                                        "automation": _condition(node.automation_condition)}
    jobs = {j.name: _job(j) for j in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
            if not j.name.startswith("__")}
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone,
                          "default_status": s.default_status.value}
                 for s in sorted(defs.schedules or [], key=lambda s: s.name)}
    sensors = {s.name: {"type": type(s).__name__, "default_status": s.default_status.value,
                        "minimum_interval_seconds": s.minimum_interval_seconds}
               for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def _built_in_subprocess(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in GRAPH_VARIABLES}
    env.update(HLV_PROFILE="tiny", HLV_HOME=str(tmp_path))
    code = ("import json, warnings; warnings.simplefilter('ignore'); "
            "from hlv_assets_tests.defs.test_graph_snapshot import build; print(json.dumps(build()))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _text(snapshot: dict) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=True) + "\n"


def test_the_graph_matches_its_snapshot(tmp_path):
    current = _text(_built_in_subprocess(tmp_path))
    if os.environ.get("HLV_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), current.splitlines(True),
                                        "graph_snapshot.json (checked in)", "the graph now", n=2))
    assert not diff, ("the graph changed; review the diff, then rewrite the snapshot with "
                      f"HLV_UPDATE_SNAPSHOT=1:\n{diff}")


def test_the_snapshot_covers_what_the_ui_shows():
    """The checked-in snapshot has the parts a reviewer relies on (so it cannot silently shrink)."""
    snapshot = json.loads(SNAPSHOT.read_text())
    assert snapshot["jobs"]["main_tiny"]["ops"] == ["launch_main_tiny"]
    assert snapshot["schedules"]["registry_refresh_schedule"]["cron"] == "0 4 * * *"
    assert {"llm_registry_sensor", "hlv_automation_sensor"} <= set(snapshot["sensors"])
    assert snapshot["assets"]["mjd"]["partitions"]["dimensions"]["judge"] == {"type": "dynamic", "name": "judges"}
    assert not [a for a in snapshot["assets"] if a.startswith(("finetune_bert", "finetune_roberta"))]
