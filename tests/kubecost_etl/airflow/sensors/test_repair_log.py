"""``RepairLogSensor``: defers while a repair runs, completes from the log, fails on failure events."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from kubecost_etl.airflow.sensors.repair_log import RepairLogSensor
from kubecost_etl.airflow.triggers.repair_log import RepairLogTrigger

from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import DEADLINE_SECONDS, requested

repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures


def test_a_slow_repair_defers_to_the_triggerer_and_completes_from_the_log(repair_cluster):
    repair_cluster.sim.set_faults(repair_seconds_per_day=1.5)
    watch = requested("2d", "asset")
    sensor = RepairLogSensor(task_id="wait_asset", watch=watch)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    # The worker is free again while Kubecost is still repairing (its last pass has not finished).
    lines = repair_cluster.wait_for_log(
        lambda lines: any("Asset[1d]: ETLStore.Repair" in line for line in lines), "the Asset repair to start"
    )
    assert not any("Asset[1h]: ETLStore[" in line and "build: completed" in line for line in lines)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RepairLogTrigger) and deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() > watch["deadline"] - time.time()

    event = asyncio.run(trigger.run().__anext__()).payload
    result = sensor.execute_complete({}, event)
    assert result["days_done"] == result["days_expected"] == 2
    assert {p["pass"] for p in result["passes"]} == {"Asset[1d]", "Asset[1h]"}
    assert result["answer"]["data"] == "Repairing Asset ETL" and result["seconds"] > 0
    assert result["max_bytes_per_poll"] < 64 * 1024


def test_a_failed_event_fails_the_task_with_its_message(repair_cluster):
    repair_cluster.sim.set_faults(repair_fail_step="asset")
    watch = requested("yesterday", "asset")
    sensor = RepairLogSensor(task_id="wait_asset", watch=watch)
    trigger = RepairLogTrigger.for_watch(watch, timeout_minutes=1)
    event = asyncio.run(trigger.run().__anext__()).payload
    with pytest.raises(AirflowFailException, match="failure during the Asset repair: .*MergeRange error"):
        sensor.execute_complete({}, event)
    # A failure already in the log fails the task at its first look, before deferring.
    with pytest.raises(AirflowFailException, match="MergeRange error"):
        sensor.execute({})


def test_poke_mode_follows_the_log_without_the_triggerer(repair_cluster):
    repair_cluster.sim.set_faults(repair_seconds_per_day=0.3)
    sensor = RepairLogSensor(task_id="wait_cloud", watch=requested("2d", "cloudUsage"), deferrable=False)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (poked := sensor.poke({})).is_done:
        assert time.monotonic() < deadline, "poke mode never completed"
        time.sleep(0.05)  # the sensor's poke interval, shortened
    assert poked.xcom_value["days_done"] == 2 and poked.xcom_value["polls"] >= 1


def test_poke_mode_notices_a_restart(repair_cluster):
    sensor = RepairLogSensor(task_id="wait_asset", watch=requested("yesterday", "asset"), deferrable=False)
    repair_cluster.sim.restart_pod()
    with pytest.raises(AirflowFailException, match="was replaced \\(a restart\\) during the Asset repair"):
        sensor.poke({})
