"""Refusals through Airflow's own retries: dag.test() with the DAGs' real retry settings (no retries=0).

A refusal (a config mistake, a bad trigger param) must end the run on the first try of the first task,
with one alert; a backup_schedule that is not valid must not make the backup DAG an import error; and
no configured secret may reach a task log, an XCom value or an alert body.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
import yaml

from .dag_loading import DAGS, load_dag
from .test_backup_dag import smtp_inbox  # noqa: F401 (a fixture: a real SMTP server on loopback)

SECRET_KEY = "Zq8TkXr2Wv9LmN4pS7dE"  # an inline store secret_key, on the line with the YAML mistake
BEARER = "tok-6Hn2Ke9QwR4tY7uI"  # a bearer token in a connection header with a line break in it
SECRETS = (SECRET_KEY, BEARER)
ALERTS = {"notifier": "email", "email_to": ["oncall@example.com"], "smtp_conn_id": "smtp_test"}


def task_instances(run) -> dict[str, object]:
    return {ti.task_id: ti for ti in run.get_task_instances()}


def mail_bodies(inbox) -> list[str]:
    bodies = []
    for mail in inbox:
        message = email.message_from_bytes(mail.content, policy=email.policy.default)
        bodies.append(f"{message['Subject']}\n{message.get_body(('html', 'plain')).get_content()}")
    return bodies


def all_xcom_values(run) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return [json.dumps(XComModel.deserialize_value(row), default=str) for row in rows]


def task_log_files(airflow_home: str) -> str:
    logs = Path(airflow_home) / "logs"
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()) if logs.exists() else ""


def write_config(tmp_path, text: str) -> Path:
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(text)
    return config


def test_a_config_mistake_fails_the_first_task_on_its_first_try_with_one_alert(
        airflow_db, tmp_path, monkeypatch, smtp_inbox):  # noqa: F811
    store = tmp_path / "store"
    config = write_config(tmp_path, yaml.safe_dump({
        "alerts": ALERTS, "defaults": {"backup": {"object_store": {"type": "FILESYSTEM",
                                                                   "config": {"directory": str(store)}}}},
        "clusters": [{"id": "twin"}, {"id": "twin"}]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    dag = load_dag("kubecost_etl_backup")  # the DAG's own retries (2, with backoff)
    assert dag.get_task("select_clusters").retries == 2

    run = dag.test()

    first = task_instances(run)["select_clusters"]
    assert run.state == "failed"
    assert (first.state, first.try_number) == ("failed", 1)  # not up_for_retry: refused on the first try
    [body] = mail_bodies(smtp_inbox)  # exactly one alert (report, the leaf, sends none of its own)
    assert "kubecost_etl_backup.select_clusters failed" in body
    assert "select_clusters refused (not retried): cluster 'twin': id: duplicate" in body
    assert not store.exists()  # nothing written


def test_an_invalid_schedule_still_loads_the_dag_and_its_first_task_fails_with_the_error(
        airflow_db, tmp_path, monkeypatch, smtp_inbox):  # noqa: F811
    from airflow.dag_processing.dagbag import DagBag

    config = write_config(tmp_path, yaml.safe_dump({
        "backup_schedule": "0 25 * * *", "alerts": ALERTS,
        "defaults": {"backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path)}}}},
        "clusters": [{"id": "a"}]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    bag = DagBag(dag_folder=str(DAGS / "kubecost_etl_backup.py"))
    assert bag.import_errors == {}
    dag = bag.dags["kubecost_etl_backup"]
    assert dag.schedule == "@daily"  # the safe fallback: runs go on, and each one reports the mistake

    run = dag.test()

    first = task_instances(run)["select_clusters"]
    assert (run.state, first.state, first.try_number) == ("failed", "failed", 1)
    [body] = mail_bodies(smtp_inbox)
    assert "backup_schedule: '0 25 * * *' is not a valid cron expression" in body
