"""kubecost_etl_health in a real Airflow (dag.test) against the simulator, a filesystem store and
a local Slack API.
"""

from __future__ import annotations

import json

import pytest
from kubecost_etl.airflow.stages.backup import run_backup

from tests.etl_trees import make_etl_dir, tree_digests
from tests.kubecost_etl.airflow.test_notifiers import slack_api  # noqa: F401 - the local Slack Web API

from .dag_loading import load_dag

CLUSTER = "cluster-a"


def write_config(path, sim, store, **health) -> None:
    path.write_text(
        json.dumps(
            {
                "alerts": {"notifier": "slack", "slack_conn_id": "slack_test", "slack_channel": "#etl"},
                "health": {"auto_fill": True, **health},
                "clusters": [
                    {
                        "id": CLUSTER,
                        "kubeconfig": str(sim.kubeconfig),
                        "hourly_hours": 6,
                        "backup": {
                            "object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}
                        },
                    }
                ],
            }
        )
    )


@pytest.fixture
def cluster(tmp_path, monkeypatch, simulator):
    etl = make_etl_dir(tmp_path, days=5, hourly_hours=6, file_bytes=20_000, seed=5)
    sim = simulator(etl)
    config = tmp_path / "kubecost-etl.yaml"
    write_config(config, sim, tmp_path / "store")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return sim, etl, config


@pytest.fixture
def dags(airflow_db):
    from airflow.models import Variable

    for key in (f"kubecost_etl_health__{CLUSTER}", "kubecost_etl_health__config"):
        Variable.delete(key)  # noqa: AIR311 - metadata DB cleanup outside any task
    return load_dag("kubecost_etl_health", retries=0), load_dag("kubecost_etl_restore", retries=0)


def states(run) -> dict[str, str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def triggered_fill(run_id: str):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "kubecost_etl_restore", DagRun.run_id.like(f"health_fill__{CLUSTER}__%"))
            .all()
        )
        return [(r.run_id, dict(r.conf)) for r in runs if r.run_id.endswith(run_id)]


def test_lost_daily_files_alert_once_are_filled_and_recover(cluster, dags, slack_api):  # noqa: F811
    sim, etl, _ = cluster
    health, restore = dags
    snapshot = run_backup(CLUSTER)["snapshot_id"]
    original = tree_digests(etl)
    victims = sorted(p for p in original if "/1d/" in p)[1:3]  # two days in the middle of the daily stores
    for victim in victims:
        (etl / victim).unlink()

    first = health.test()
    assert first.state == "success", states(first)
    [message] = slack_api
    assert message["form"]["channel"] == "#etl"
    assert "lost_files: 2 file(s)" in message["form"]["text"] and "missing_days" in message["form"]["text"]
    assert "xoxb" not in message["form"]["text"]
    [(fill_run_id, conf)] = triggered_fill(first.run_id)
    assert conf == {
        "cluster": CLUSTER,
        "snapshot": snapshot,
        "mode": "fill-missing",
        "restart": False,
        "dry_run": False,
    }

    filled = restore.test(run_conf=conf)  # what the scheduler runs for that triggered run
    assert filled.state == "success"
    assert tree_digests(etl) == original  # exactly the two files back, byte-identical; nothing else changed

    second = health.test()
    assert second.state == "success", states(second)
    assert len(slack_api) == 2
    recovery = slack_api[1]["form"]["text"]
    assert "lost_files recovered" in recovery and "missing_days recovered" in recovery
    assert ":rotating_light:" not in recovery
    assert triggered_fill(second.run_id) == [] and states(second)[("auto_fill", -1)] == "skipped"


def test_a_quarantined_object_alerts_once_and_is_mended(cluster, dags, slack_api, tmp_path):  # noqa: F811
    from kubecost_etl.snapshots.repository import Repository
    from kubecost_etl.snapshots.verify import verify_snapshot
    from kubecost_etl.storage.filesystem import FilesystemStore

    health, _ = dags
    snapshot = run_backup(CLUSTER)["snapshot_id"]
    repo = Repository(FilesystemStore(str(tmp_path / "store")), CLUSTER)
    victim = max(repo.load_manifest(snapshot).files, key=lambda f: f.stored_size).object
    repo.store.put_bytes(repo.key(victim), bytes(repo.object_sizes()[victim]))  # same size, other bytes
    assert not verify_snapshot(repo, snapshot, full=True)["ok"]  # e.g. a restore's verify finds it

    first = health.test()
    assert first.state == "success", states(first)
    [message] = slack_api
    assert "quarantine: 1 stored object(s) found damaged" in message["form"]["text"]

    mended = run_backup(CLUSTER)["snapshot_id"]  # a sampled verify: it re-reads the quarantined object
    assert repo.load_verification(mended)["released"] == [victim] and repo.latest_good() == mended
    second = health.test()
    assert second.state == "success", states(second)
    assert len(slack_api) == 2 and "quarantine recovered" in slack_api[1]["form"]["text"]
    assert ":rotating_light:" not in slack_api[1]["form"]["text"]


def test_an_invalid_config_alerts_once_and_fails_the_run(cluster, dags, slack_api, tmp_path):  # noqa: F811
    sim, _, config = cluster
    health, _ = dags
    body = json.loads(config.read_text())
    body["clusters"][0]["backup"]["compression"] = "lz4"
    config.write_text(json.dumps(body))

    runs = [health.test(), health.test()]
    assert [r.state for r in runs] == ["failed", "failed"]
    assert states(runs[0])[("check_config", -1)] == "failed"
    [message] = slack_api
    assert "config: cluster 'cluster-a': backup.compression: 'lz4'" in message["form"]["text"]

    write_config(config, sim, tmp_path / "store", auto_fill=False)
    fixed = health.test()
    assert states(fixed)[("check_config", -1)] == "success"
    assert "config recovered" in slack_api[1]["form"]["text"]


def test_schedule_comes_from_the_config_and_parsing_stays_off_the_network(tmp_path, monkeypatch):
    import socket

    from airflow.dag_processing.dagbag import DagBag

    from .dag_loading import DAGS

    config = tmp_path / "kubecost-etl.yaml"
    config.write_text("health: {schedule: '20 * * * *'}\nclusters: [{id: x, kubeconfig: /nonexistent}]\n")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network while parsing"))
    bag = DagBag(dag_folder=str(DAGS / "kubecost_etl_health.py"))
    assert bag.import_errors == {}
    dag = bag.dags["kubecost_etl_health"]
    assert dag.timetable.expression == "20 * * * *" and dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {
        "check_config",
        "check_cluster",
        "alert",
        "fill_requests",
        "auto_fill",
    }
    assert all(not t.on_failure_callback for t in dag.tasks)  # its alerts are its own, deduplicated
