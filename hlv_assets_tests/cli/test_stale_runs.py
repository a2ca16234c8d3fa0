"""A killed `hlv run` leaves its run STARTED and holding its `gpu` pool slot; the next `hlv run` marks such runs
failed and frees their slots, but only runs of this host whose process is gone."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from hlv_assets.cli.stale_runs import PID_TAG, process_tag, reap_dead_runs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _started_run(instance, pid_tag: str) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=run_id, status=dg.DagsterRunStatus.STARTED,
                                tags={PID_TAG: pid_tag}))
    instance.event_log_storage.claim_concurrency_slot("gpu", run_id, "mjd")
    return run_id


def test_runs_of_a_dead_hlv_process_are_failed_and_free_their_slot():
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        dead = _started_run(instance, f"{socket.gethostname()}:{_dead_pid()}")
        assert [s.run_id for s in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots] == [dead]
        alive = _started_run(instance, process_tag())  # this process: still running, left alone
        elsewhere = _started_run(instance, "another-host:1")  # another machine: not ours to judge
        assert reap_dead_runs(instance) == [dead]
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(elsewhere).status == dg.DagsterRunStatus.STARTED
        claimed = {s.run_id for s in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots}
        assert dead not in claimed
        assert reap_dead_runs(instance) == []  # once
