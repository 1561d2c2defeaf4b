"""kubecost_etl_repair end to end: dag.test() against the simulator (each run costs seconds: few runs)."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from kubecost_etl.etl.windows import DAY, iso

from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import CLUSTER_ID

from .dag_loading import load_dag

repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures

V1_CALLS = [
    "/model/etl/asset/repair",
    "/model/etl/cloudUsage/repair",
    "/model/etl/asset/reconciliation/repair",
    "/model/etl/allocation/repair",
]
V2_CALLS = ["/model/etl/asset/repair", "/model/etl/allocation/repair", "/model/cloudCost/repair"]


@pytest.fixture
def repair_dag(airflow_db):
    # Retries still happen, without the minutes of backoff.
    return load_dag("kubecost_etl_repair", retry_delay=timedelta(0))


def run(dag, **conf):
    return dag.test(run_conf={"cluster": CLUSTER_ID, **conf})


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)


def test_the_dag_parses_without_io_and_declares_its_params(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while parsing the DAG")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("KUBECOST_ETL_CONFIG", raising=False)
    dag = load_dag("kubecost_etl_repair")
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.max_active_runs == 1  # manual only
    assert {
        "cluster",
        "window",
        "profile",
        "provider",
        "backup_first",
        "dry_run",
        "allow_partial_days",
    } <= set(dag.params)
    assert (
        dag.params["profile"] == "v1"
        and dag.params["backup_first"] is True
        and dag.params["dry_run"] is False
    )
    assert [t for t in dag.task_ids if t.startswith("v1.")] == [
        "v1.request_asset",
        "v1.wait_asset",
        "v1.request_cloudUsage",
        "v1.wait_cloudUsage",
        "v1.request_reconciliation",
        "v1.wait_reconciliation",
        "v1.request_allocation",
        "v1.wait_allocation",
    ]
    for task in dag.tasks:
        # summary fails only after a task that has alerted already: one refusal, one alert
        assert bool(task.on_failure_callback) == (task.task_id != "summary"), task.task_id
        if task.task_id.startswith(("v1.wait", "v2.wait")):
            assert task.retries == 0 and task.deferrable
        if task.task_id.startswith(("v1.request", "v2.request", "backup")):
            assert task.retries >= 1


def test_v1_backs_up_then_repairs_in_order_with_every_day_and_hour_matched(repair_dag, repair_cluster):
    dag_run = run(repair_dag, window="2d")
    assert dag_run.state == "success", states(dag_run)
    calls = repair_cluster.repair_calls()
    assert [path for path, _ in calls] == V1_CALLS
    assert len({query["window"] for _, query in calls}) == 1  # every step repaired the same absolute window

    backup = xcom(dag_run, "backup")
    snapshot = (
        repair_cluster.backup_dir / "kubecost-etl-backup" / CLUSTER_ID / "snapshots" / backup["snapshot_id"]
    )
    assert (snapshot / "manifest.json").exists()
    log = [entry["path"] for entry in repair_cluster.sim.request_log_lines()]
    assert max(i for i, p in enumerate(log) if p.endswith("/exec")) < log.index(
        V1_CALLS[0]
    )  # backup came first

    for step in ("asset", "cloudUsage", "reconciliation", "allocation"):
        result = xcom(dag_run, f"v1.wait_{step}")
        assert result["days_done"] == result["days_expected"] == 2, step
    hourly = {p["pass"]: p for p in xcom(dag_run, "v1.wait_allocation")["passes"]}["Allocation[1h]"]
    assert hourly["required"] and hourly["done"] == hourly["expected"] >= 25
    summary = xcom(dag_run, "summary")
    assert [line.split(":")[0] for line in summary["lines"]] == [
        "Asset",
        "CloudUsage",
        "Reconciliation",
        "Allocation",
    ]
    assert all("days completed 2/2" in line for line in summary["lines"])
    assert set(states(dag_run)[t] for t in states(dag_run) if t.startswith("v2.")) == {"skipped"}


def test_v2_without_backup_and_slow_repairs_waited_for_in_the_triggerer(repair_dag, repair_cluster):
    repair_cluster.sim.set_faults(repair_seconds_per_day=4)  # each step runs for seconds: its sensor defers
    dag_run = run(repair_dag, window="yesterday", profile="v2", backup_first=False)
    assert dag_run.state == "success", states(dag_run)
    waits = [ti for ti in dag_run.get_task_instances() if ti.task_id.startswith("v2.wait_")]
    assert len(waits) == 3 and all(ti.trigger_id is not None for ti in waits), [ti.task_id for ti in waits]
    assert [path for path, _ in repair_cluster.repair_calls()] == V2_CALLS
    assert states(dag_run)["backup"] == "skipped"
    assert not any(entry["path"].endswith("/exec") for entry in repair_cluster.sim.request_log_lines())
    assert xcom(dag_run, "v2.wait_cloudCost")["days_done"] == 1


def test_a_500_is_retried_then_fails_clearly_and_nothing_after_it_runs(repair_dag, repair_cluster):
    repair_cluster.sim.set_faults(repair_http_500=["cloudUsage"])
    dag_run = run(repair_dag, window="yesterday", backup_first=False)
    assert dag_run.state == "failed"
    got = states(dag_run)
    assert got["v1.wait_asset"] == "success" and got["v1.request_cloudUsage"] == "failed"
    assert got["v1.request_allocation"] == "upstream_failed" and got["summary"] == "failed"
    tries = [ti.try_number for ti in dag_run.get_task_instances() if ti.task_id == "v1.request_cloudUsage"]
    assert tries == [3]  # the first try and two retries
    assert [path for path, _ in repair_cluster.repair_calls()] == V1_CALLS[:1] + V1_CALLS[1:2] * 3


def test_a_bad_window_fails_the_run_in_preflight_without_any_call(repair_dag, repair_cluster):
    dag_run = run(repair_dag, window="2026-01-10T00:00:00.5Z,2026-01-11T00:00:00Z")
    assert dag_run.state == "failed"
    assert states(dag_run)["preflight"] == "failed" and states(dag_run)["backup"] == "upstream_failed"
    assert repair_cluster.sim.request_log_lines() == []


def _days_ago(first: int, last: int) -> str:
    today = int(time.time()) // DAY * DAY
    return f"{iso(today - first * DAY)},{iso(today - (last - 1) * DAY)}"


def test_days_prometheus_lost_are_refused_in_preflight_and_nothing_is_backed_up_or_repaired(
    repair_dag, repair_cluster
):
    today = int(time.time()) // DAY * DAY
    repair_cluster.sim.set_faults(prometheus_data_from=today - 3 * DAY)  # wiped; still reports 15d retention
    dag_run = run(repair_dag, window=_days_ago(6, 4))
    assert dag_run.state == "failed"
    got = states(dag_run)
    assert got["preflight"] == "failed" and got["backup"] == "upstream_failed"
    assert repair_cluster.repair_calls() == []
    assert not any(entry["path"].endswith("/exec") for entry in repair_cluster.sim.request_log_lines())


def test_a_gap_day_named_in_allow_partial_days_is_repaired_and_the_summary_says_so(
    repair_dag, repair_cluster
):
    today = int(time.time()) // DAY * DAY
    gap_day = today - 2 * DAY
    repair_cluster.sim.set_faults(prometheus_gap=[f"{gap_day},{gap_day + DAY}"])
    dag_run = run(
        repair_dag,
        window=_days_ago(3, 1),
        profile="v2",
        backup_first=False,
        allow_partial_days=[iso(gap_day)[:10]],
    )
    assert dag_run.state == "success", states(dag_run)
    assert [path for path, _ in repair_cluster.repair_calls()] == V2_CALLS
    summary = xcom(dag_run, "summary")
    assert summary["partial_days"] == [iso(gap_day)[:10]]
    assert summary["lines"][-1].startswith(
        f"allow_partial_days: {iso(gap_day)[:10]} repaired although Prometheus"
    )
    assert "0/24 hours" in summary["lines"][-1]
