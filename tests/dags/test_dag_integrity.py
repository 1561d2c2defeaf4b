"""Every DAG file imports cleanly, fast, and without touching the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"kubecost_etl_backup"}


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
    backup = bag.dags["kubecost_etl_backup"]
    assert backup.max_active_runs == 1
    assert backup.timetable.expression == "0 3 * * *"
    for task in backup.tasks:
        assert task.retries >= 1, task.task_id
        assert task.on_failure_callback or task.task_id == "report", task.task_id


def test_broken_config_does_not_hide_the_dag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "broken.yaml"
    config.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert bag.dags["kubecost_etl_backup"].timetable.expression == "0 0 * * *"  # @daily
