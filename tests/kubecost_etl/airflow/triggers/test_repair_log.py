"""``RepairLogTrigger`` run as the triggerer runs it, against repairs in the simulator."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import time

from kubecost_etl.airflow.triggers.repair_log import API_ERRORS_IN_A_ROW, RepairLogTrigger

from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import requested

repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures


def first_event(trigger: RepairLogTrigger) -> dict:
    return asyncio.run(trigger.run().__anext__()).payload


def test_serialize_rebuilds_the_same_trigger_from_json(repair_cluster):
    trigger = RepairLogTrigger.for_watch(requested("yesterday", "asset"))
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert module == "kubecost_etl.airflow.triggers.repair_log"
    assert rebuilt.serialize() == (classpath, kwargs)


def test_done_when_every_day_and_hour_of_the_window_is_logged(repair_cluster):
    watch = requested("today", "asset")
    assert watch["expected"]["hourly"] == "required" and watch["expected"]["hours"]
    event = first_event(RepairLogTrigger.for_watch(watch))
    assert event["status"] == "done", event["message"]
    passes = {p["pass"]: p for p in event["passes"]}
    assert passes["Asset[1d]"]["done"] == passes["Asset[1d]"]["expected"] == 1
    assert passes["Asset[1h]"]["done"] == passes["Asset[1h]"]["expected"] == len(watch["expected"]["hours"])
    assert event["days_done"] == event["days_expected"] == 1


def test_a_failure_line_fails_at_once_quoting_it(repair_cluster):
    repair_cluster.sim.set_faults(repair_fail_step="reconciliation")
    event = first_event(RepairLogTrigger.for_watch(requested("2d", "reconciliation")))
    assert event["status"] == "failed"
    assert "MergeRange error: boundary error: requested" in event["line"]
    assert event["message"].startswith("Kubecost logged a failure during the Reconciliation repair: ")
    assert event["line"] in event["message"]


def test_a_pod_restart_mid_step_fails_clearly_instead_of_waiting(repair_cluster):
    repair_cluster.sim.set_faults(restart_during_step="allocation", repair_seconds_per_day=0.2)
    watch = requested("3d", "allocation")
    started = time.monotonic()
    event = first_event(RepairLogTrigger.for_watch(watch))
    assert event["status"] == "failed" and time.monotonic() - started < 30
    assert f"the cost-model pod kubecost/{watch['pod']['name']} was replaced (a restart)" in event["message"]
    assert repair_cluster.sim.cost_model_pod() != watch["pod"]["name"]


def test_the_step_timeout_names_what_is_still_missing(repair_cluster):
    repair_cluster.sim.set_faults(repair_seconds_per_day=60)
    trigger = RepairLogTrigger.for_watch(
        requested("3d", "asset"), deadline=time.time() + 0.3, timeout_minutes=0.005
    )
    event = first_event(trigger)
    assert event["status"] == "failed"
    assert "did not finish within 0.005 minutes (repair.step_timeout_minutes)" in event["message"]
    assert "Asset[1d] started, 0/3 done, waiting for" in event["message"]


def test_a_kubernetes_api_that_keeps_failing_ends_the_wait(repair_cluster, tmp_path):
    watch = requested("yesterday", "asset")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    config = json.loads(repair_cluster.sim.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port}"
    (tmp_path / "broken").write_text(json.dumps(config))
    trigger = RepairLogTrigger.for_watch(
        watch, kube={"kubeconfig": str(tmp_path / "broken")}, poll_seconds=0.01
    )
    event = first_event(trigger)
    assert event["status"] == "failed"
    assert f"the Kubernetes API failed {API_ERRORS_IN_A_ROW} polls in a row" in event["message"]
