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

from tests.kubecost_etl.repair import harness

from . import test_backup_dag
from .dag_loading import DAGS, load_dag

smtp_inbox = test_backup_dag.smtp_inbox  # a fixture: a real SMTP server on loopback

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
    return (
        "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
        if logs.exists()
        else ""
    )


def write_config(tmp_path, text: str) -> Path:
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    "dag_id, first_task, conf, problem",
    [
        ("kubecost_etl_backup", "select_clusters", {}, "cluster 'twin': id: duplicate"),
        (
            "kubecost_etl_repair",
            "preflight",
            {"cluster": "nope", "window": "yesterday"},
            "unknown cluster 'nope'",
        ),
        ("kubecost_etl_restore", "preflight", {"cluster": "nope"}, "unknown cluster 'nope'"),
    ],
)
def test_a_config_mistake_fails_the_first_task_on_its_first_try_with_one_alert(
    airflow_db, tmp_path, monkeypatch, smtp_inbox, dag_id, first_task, conf, problem
):
    store = tmp_path / "store"
    config = write_config(
        tmp_path,
        yaml.safe_dump(
            {
                "alerts": ALERTS,
                "defaults": {
                    "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}}
                },
                "clusters": [{"id": "twin"}, {"id": "twin"}]
                if dag_id == "kubecost_etl_backup"
                else [{"id": "a"}],
            }
        ),
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    dag = load_dag(dag_id)  # the DAG's own retry settings (no retries=0 here)
    assert dag.default_args["retries"] == 2

    run = dag.test(run_conf=conf)

    first = task_instances(run)[first_task]
    assert run.state == "failed"
    assert (
        first.max_tries >= 2 or first_task == "preflight"
    )  # retries were possible (repair's preflight has 0)
    assert (first.state, first.try_number) == ("failed", 1)  # not up_for_retry: refused on the first try
    [body] = mail_bodies(smtp_inbox)  # exactly one alert (the leaves that fail after it send none)
    assert f"{dag_id}.{first_task} failed" in body
    assert problem in body
    assert not store.exists()  # nothing written


def test_an_invalid_schedule_still_loads_the_dag_and_its_first_task_fails_with_the_error(
    airflow_db, tmp_path, monkeypatch, smtp_inbox
):
    from airflow.dag_processing.dagbag import DagBag

    config = write_config(
        tmp_path,
        yaml.safe_dump(
            {
                "backup_schedule": "0 25 * * *",
                "alerts": ALERTS,
                "defaults": {
                    "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path)}}}
                },
                "clusters": [{"id": "a"}],
            }
        ),
    )
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


repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_no_secret_reaches_a_task_log_an_xcom_or_an_alert(
    airflow_db,
    tmp_path,
    monkeypatch,
    smtp_inbox,
    repair_cluster,
    capfd,
    caplog,
):
    # 1. The backup's object-store.yaml has a YAML mistake on the line of its inline secret_key.
    store_file = tmp_path / "object-store.yaml"
    store_file.write_text(f'type: S3\nconfig:\n  bucket: b\n  secret_key: "{SECRET_KEY}" oops\n')
    with pytest.raises(yaml.YAMLError) as raw_error:
        yaml.safe_load(store_file.read_text())
    assert SECRET_KEY in str(raw_error.value)  # PyYAML itself quotes the line: the code must not pass it on
    config = write_config(
        tmp_path,
        yaml.safe_dump(
            {
                "alerts": ALERTS,
                "defaults": {"backup": {"object_store": {"config_file": str(store_file)}}},
                "clusters": [{"id": "a"}],
            }
        ),
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    backup_run = load_dag("kubecost_etl_backup").test()
    assert task_instances(backup_run)["select_clusters"].state == "failed"

    # 2. The configuration file itself is not valid YAML, on the line of an inline secret_key (no alert is
    #    possible: the alert settings are in that file; the failure is logged).
    config.write_text(
        f"clusters:\n  - id: a\n    backup: {{object_store: {{type: S3, config: {{secret_key: "
        f'"{SECRET_KEY}" x}}}}}}\n'
    )
    broken_run = load_dag("kubecost_etl_backup").test()
    assert task_instances(broken_run)["select_clusters"].state == "failed"

    # 3. The repair's Kubecost connection has a bearer token header with a line break in it.
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBECOST_TEST",
        json.dumps(
            {"conn_type": "http", "extra": {"headers": {"Authorization": f"Bearer {BEARER}\nX-Injected: 1"}}}
        ),
    )
    repair_cluster.configure(
        with_backup=False,
        kubecost_url="https://kubecost.example.invalid",
        kubecost_conn_id="kubecost_test",
        prometheus_retention="15d",
    )
    raw = json.loads(repair_cluster.config_path.read_text())
    repair_cluster.config_path.write_text(json.dumps({**raw, "alerts": ALERTS}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(repair_cluster.config_path))
    repair_run = load_dag("kubecost_etl_repair").test(
        run_conf={
            "cluster": harness.CLUSTER_ID,
            "window": "yesterday",
            "backup_first": False,
            "dry_run": True,
        }
    )
    preflight = task_instances(repair_run)["preflight"]
    assert (preflight.state, preflight.try_number) == ("failed", 1)

    out, err = capfd.readouterr()
    logs = "\n".join([out, err, caplog.text, task_log_files(airflow_db)])
    bodies = mail_bodies(smtp_inbox)
    xcoms = [value for run in (backup_run, broken_run, repair_run) for value in all_xcom_values(run)]
    # The failures were reported (so the search below looks at real failure texts) ...
    assert "invalid YAML at line 4" in logs and "is not valid YAML: line 3" in logs
    assert "the value of header 'Authorization' holds a line break" in logs
    assert len(bodies) == 2 and "invalid YAML at line 4" in bodies[0]
    assert "the value of header 'Authorization' holds a line break" in bodies[1]
    # ... and no secret is in any of them.
    assert_no_secret(logs, *bodies, *xcoms)
