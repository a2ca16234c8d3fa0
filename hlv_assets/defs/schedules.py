"""Schedules: the registry refresh on `HLV_REGISTRY_CRON` (default daily 04:00 UTC), shown on the Automation page.

The `llm_registry_sensor` (defs/automation.py) still picks up `hlv llm add|retire` within a minute; the schedule
is the visible, cron-driven refresh that also re-reads `llms.yaml` (new default LLMs).
"""

from __future__ import annotations

import os

import dagster as dg

from hlv_assets.defs.automation import registry_cron
from hlv_assets.defs.jobs import registry_refresh

REGISTRY_SCHEDULE = "registry_refresh_schedule"


def registry_schedule() -> dg.ScheduleDefinition:
    status = os.environ.get("HLV_REGISTRY_SCHEDULE_STATUS", "running").strip().lower()
    if status not in ("running", "stopped"):
        raise ValueError(f"HLV_REGISTRY_SCHEDULE_STATUS={status!r}: expected running or stopped")
    return dg.ScheduleDefinition(
        name=REGISTRY_SCHEDULE, job=registry_refresh, cron_schedule=registry_cron(), execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING if status == "running" else dg.DefaultScheduleStatus.STOPPED,
        description="llms.yaml -> LLM registry -> generators / judges / explanation partitions (HLV_REGISTRY_CRON)",
    )


@dg.definitions
def schedules() -> dg.Definitions:
    return dg.Definitions(schedules=[registry_schedule()])
