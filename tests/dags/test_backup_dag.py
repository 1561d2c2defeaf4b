"""The backup DAG end to end in a real Airflow (SQLite, dag.test()) against the simulator and moto S3."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
import yaml

from tests.servers import free_loopback_port

from .dag_loading import load_dag

BUCKET = "dag-backups"


def task_states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


@pytest.fixture
def s3(moto_s3_server):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def smtp_inbox(monkeypatch):
    """A real SMTP server on loopback; yields the list of messages it received."""
    from aiosmtpd.controller import Controller

    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_loopback_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TEST",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"},
            }
        ),
    )
    yield received
    controller.stop()


def write_config(tmp_path, moto_s3_server, clusters, **extra) -> Path:
    store = tmp_path / "object-store.yaml"
    store.write_text(
        yaml.safe_dump(
            {
                "type": "S3",
                "config": {
                    "bucket": BUCKET,
                    "endpoint": moto_s3_server.url.split("://", 1)[1],
                    "insecure": True,
                    "region": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                },
            }
        )
    )
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"backup": {"object_store": {"config_file": str(store)}}},
                "clusters": clusters,
                **extra,
            }
        )
    )
    return config


def keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.slow
def test_one_cluster_failing_does_not_stop_the_other(
    airflow_db, tmp_path, monkeypatch, simulator, s3, moto_s3_server
):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    sim = simulator()
    config = write_config(
        tmp_path,
        moto_s3_server,
        [
            {"id": "healthy", "kubeconfig": str(sim.kubeconfig)},
            {"id": "no-kubecost", "kubeconfig": str(sim.kubeconfig), "selector": "app=not-installed"},
        ],
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    run = load_dag("kubecost_etl_backup", retries=0).test()

    states = task_states(run)
    assert run.state == "failed"  # a failed cluster fails the run, so it alerts
    assert states[("backup_cluster.verify", 0)] == "success"
    assert states[("backup_cluster.plan", 1)] == "failed"  # no pod matches its selector
    assert states[("backup_cluster.stream", 1)] == "upstream_failed"
    assert states[("report", -1)] == "failed"  # ran (all_done), listed both, and failed the run
    manifests = [k for k in keys(s3) if k.endswith("/manifest.json")]
    assert len(manifests) == 1 and manifests[0].startswith("kubecost-etl-backup/healthy/snapshots/")
    assert any(k.endswith("/verification.json") for k in keys(s3))
    with create_session() as session:
        events = session.query(AssetEvent).all()
        assert [e.asset.uri for e in events] == ["kubecost-etl://healthy/snapshots"]


@pytest.mark.slow
def test_a_bad_config_fails_first_writes_nothing_and_alerts(
    airflow_db, tmp_path, monkeypatch, simulator, s3, moto_s3_server, smtp_inbox
):
    sim = simulator()
    config = write_config(
        tmp_path,
        moto_s3_server,
        [
            {"id": "twin", "kubeconfig": str(sim.kubeconfig)},
            {"id": "twin", "kubeconfig": str(sim.kubeconfig)},
        ],
        alerts={"notifier": "email", "email_to": ["oncall@example.com"], "smtp_conn_id": "smtp_test"},
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    run = load_dag("kubecost_etl_backup", retries=0).test()

    states = task_states(run)
    assert run.state == "failed"
    assert states[("select_clusters", -1)] == "failed"
    assert states[("report", -1)] == "failed"
    assert keys(s3) == []
    assert all(not pod["ephemeral_containers"] for pod in sim.state()["pods"])
    [mail] = smtp_inbox
    assert mail.rcpt_tos == ["oncall@example.com"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert "kubecost_etl_backup.select_clusters failed" in message["Subject"]
    body = message.get_body(("html", "plain")).get_content()
    assert "cluster 'twin': id: duplicate" in body


def test_a_damaged_stored_object_fails_verify_in_one_try_and_the_snapshot_never_counts(
    airflow_db, tmp_path, monkeypatch, simulator
):
    """Damage is a verdict, not a hiccup: verify records it and fails at once (the DAG's real retries)."""
    from kubecost_etl.airflow.stages import backup as stages
    from kubecost_etl.snapshots.repository import Repository
    from kubecost_etl.storage.filesystem import FilesystemStore

    from .dag_loading import load_dag_retrying
    from .one_cluster import CLUSTER, filesystem_cluster

    _, _, store = filesystem_cluster(tmp_path, monkeypatch, simulator, seed=5)
    real_commit = stages.commit

    def commit_then_damage(*args, **kwargs):
        snapshot_id = real_commit(*args, **kwargs)
        stored = max(
            (p for p in store.rglob("*") if "/objects/" in p.as_posix()), key=lambda p: p.stat().st_size
        )
        stored.write_bytes(bytes(len(stored.read_bytes())))  # same size, other bytes: only a re-hash sees it
        return snapshot_id

    monkeypatch.setattr(stages, "commit", commit_then_damage)

    run = load_dag_retrying("kubecost_etl_backup").test(run_conf={"full_verify": True})

    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    verify = tis[("backup_cluster.verify", 0)]
    assert run.state == "failed"
    assert (verify.state, verify.try_number) == ("failed", 1)  # not retried
    assert tis[("backup_cluster.release_lease", 0)].state == "success"  # the teardown still ran
    repo = Repository(FilesystemStore(str(store)), CLUSTER)
    [snapshot_id] = repo.snapshot_ids()
    assert repo.load_verification(snapshot_id)["ok"] is False  # the verdict is recorded
    assert repo.latest_good() is None


def test_the_next_backup_mends_a_damaged_object_instead_of_reusing_it(
    airflow_db, tmp_path, monkeypatch, simulator
):
    """A damaged object is quarantined by the verify that found it; the next run (the DAG's real retries)
    sends its file again under the same key, and the earlier snapshot naming it reads right again."""
    from kubecost_etl.airflow.stages import backup as stages
    from kubecost_etl.snapshots.repository import Repository
    from kubecost_etl.snapshots.verify import verify_snapshot
    from kubecost_etl.storage.filesystem import FilesystemStore

    from .dag_loading import load_dag_retrying
    from .one_cluster import CLUSTER, filesystem_cluster

    _, _, store = filesystem_cluster(tmp_path, monkeypatch, simulator, seed=6)
    real_commit = stages.commit
    damaged = []

    def commit_then_damage(*args, **kwargs):
        snapshot_id = real_commit(*args, **kwargs)
        stored = max(
            (p for p in store.rglob("*") if "/objects/" in p.as_posix()), key=lambda p: p.stat().st_size
        )
        stored.write_bytes(bytes(len(stored.read_bytes())))
        damaged.append(stored.relative_to(store / "kubecost-etl-backup" / CLUSTER).as_posix())
        return snapshot_id

    monkeypatch.setattr(stages, "commit", commit_then_damage)
    first = load_dag_retrying("kubecost_etl_backup").test(run_conf={"full_verify": True})
    assert first.state == "failed"
    repo = Repository(FilesystemStore(str(store)), CLUSTER)
    [first_id] = repo.snapshot_ids()
    assert repo.load_verification(first_id)["quarantined"] == damaged
    assert repo.quarantined() == set(damaged)

    monkeypatch.setattr(stages, "commit", real_commit)
    second = load_dag_retrying("kubecost_etl_backup").test(run_conf={"full_verify": True})

    assert second.state == "success", [(ti.task_id, ti.state) for ti in second.get_task_instances()]
    second_id = repo.snapshot_ids()[-1]
    assert repo.latest_good() == second_id != first_id
    assert repo.load_verification(second_id)["released"] == damaged
    assert repo.quarantined() == set()
    assert verify_snapshot(repo, first_id, full=True)["ok"]  # same key, right bytes: mended for both
