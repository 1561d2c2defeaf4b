"""Every DAG file imports cleanly, fast, and without touching the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "kubecost_etl_backup",
    "kubecost_etl_repair",
    "kubecost_etl_restore",
    "kubecost_etl_share",
    "kubecost_etl_import",
    "kubecost_etl_health",
    "kubecost_etl_federate",
    "kubecost_etl_prune",
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access while parsing DAGs: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_dag_files_import_without_errors_or_network(no_network, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # A config file that names a cluster whose API server does not exist: parsing must not care.
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text("backup_schedule: '0 3 * * *'\nclusters: [{id: x, kubeconfig: /nonexistent}]\n")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert EXPECTED <= set(bag.dag_ids)
    assert bag.dags["kubecost_etl_backup"].timetable.expression == "0 3 * * *"
    assert bag.dags["kubecost_etl_federate"].timetable.expression == "*/10 * * * *"  # the default
    for dag_id in EXPECTED:
        dag = bag.dags[dag_id]
        assert dag.max_active_runs == 1, dag_id
        assert any(task.retries >= 1 for task in dag.tasks), dag_id
        # Every task alerts on failure, except leaves whose failure always follows an alerting task.
        silent = {t.task_id for t in dag.tasks if not t.on_failure_callback}
        if dag_id == "kubecost_etl_health":  # it alerts by itself, once per condition (no callback storm)
            assert "alert" in {t.task_id for t in dag.tasks}
            continue
        assert silent <= {"report", "summary", "finish"}, (dag_id, silent)
    for dag_id in (
        "kubecost_etl_repair",
        "kubecost_etl_restore",
        "kubecost_etl_share",
        "kubecost_etl_import",
    ):
        assert bag.dags[dag_id].schedule is None, dag_id  # manual only


def test_broken_config_does_not_hide_the_dag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "broken.yaml"
    config.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert bag.dags["kubecost_etl_backup"].timetable.expression == "0 0 * * *"  # @daily
