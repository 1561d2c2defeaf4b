"""kubecost_etl_prune end to end in a real Airflow (SQLite, dag.test()) against the simulator and a
filesystem store: a dry run, the real prune, then a restore of the oldest kept snapshot."""

from __future__ import annotations

import json

import pytest
from kubecost_etl.airflow.stages.backup import run_backup
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.snapshots.verify import verify_snapshot
from kubecost_etl.storage.filesystem import FilesystemStore

from tests.etl_trees import make_etl_dir, tree_digests
from tests.kubecost_etl.prune.helpers import change_tree

from .dag_loading import load_dag

CLUSTER = "cluster-a"
RETENTION = {"keep_last": 2, "gc_safety_margin": "0s", "allow_unsafe_margin": True}


def states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def xcom(run, task_id: str, map_index: int = -1):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, map_index=map_index, key="return_value"
            )
            .one()
        )
        return XComModel.deserialize_value(row)


def files(root) -> dict[str, int]:
    """The backup repositories' files (the lease's own files live next to them, in kubecost-etl-leases/)."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted((root / "kubecost-etl-backup").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cluster(tmp_path, monkeypatch, simulator):
    etl = make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=11)
    sim = simulator(etl)
    store = tmp_path / "store"
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        json.dumps(
            {
                "prune_schedule": "0 5 * * *",
                "clusters": [
                    {
                        "id": CLUSTER,
                        "kubeconfig": str(sim.kubeconfig),
                        "retention": RETENTION,
                        "backup": {
                            "object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}
                        },
                    },
                    {
                        "id": "no-policy",
                        "kubeconfig": str(sim.kubeconfig),
                        "backup": {
                            "object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}
                        },
                    },
                ],
            }
        )
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return sim, etl, store


def test_the_dag_parses_without_network_daily_by_default_even_with_a_broken_config(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access while parsing the DAG")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    config = tmp_path / "broken.yaml"
    config.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    dag = load_dag("kubecost_etl_prune")
    assert dag.timetable.expression == "0 0 * * *"  # @daily: the run's first task reports the config error
    assert dag.max_active_runs == 1 and set(dag.params) == {"clusters", "dry_run"}
    assert {t.task_id for t in dag.tasks if not t.on_failure_callback} == {"summary"}
    assert all(t.retries >= 1 for t in dag.tasks if t.task_id != "summary")


def test_dry_run_then_prune_then_restore_the_oldest_kept_snapshot(airflow_db, cluster):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    sim, etl, store = cluster
    trees = {}
    for step in range(3):
        trees[run_backup(CLUSTER)["snapshot_id"]] = tree_digests(etl)
        change_tree(etl, step)
    before = files(store)
    prune_dag = load_dag("kubecost_etl_prune", retries=0)
    assert prune_dag.timetable.expression == "0 5 * * *"

    dry = prune_dag.test(run_conf={"dry_run": True})
    assert dry.state == "success", states(dry)
    assert files(store) == before
    dry_report = xcom(dry, "prune_cluster.report", 0)

    run = load_dag(
        "kubecost_etl_prune", retries=0
    ).test()  # fresh: dag.test(run_conf=...) keeps the conf in params
    assert run.state == "success", states(run)
    report = xcom(run, "prune_cluster.report", 0)
    assert report["dry_run"] is False and dry_report["dry_run"] is True
    assert {k: v for k, v in report.items() if k not in ("dry_run", "started", "finished")} == {
        k: v for k, v in dry_report.items() if k not in ("dry_run", "started", "finished")
    }
    oldest, *rest = sorted(trees)
    assert [d["snapshot_id"] for d in report["forgotten"]] == [oldest]
    assert [(d["snapshot_id"], d["reasons"]) for d in report["kept"]] == [
        (rest[1], ["last", "newest-verified"]),
        (rest[0], ["last"]),
    ]
    assert report["objects_deleted"] > 0 and report["records_deleted"] == 1
    assert xcom(run, "summary")["succeeded"] == [CLUSTER]  # the cluster without a policy is left alone
    assert (
        states(run)[("prune_cluster.acquire_lease", 0)]
        == states(run)[("prune_cluster.release_lease", 0)]
        == ("success")
    )
    assert not (store / "kubecost-etl-leases" / f"{CLUSTER}.json").exists()  # released
    repo = Repository(FilesystemStore(store), CLUSTER)
    assert repo.snapshot_ids() == rest
    for snapshot_id in rest:
        assert verify_snapshot(repo, snapshot_id, full=True)["ok"]
    with create_session() as session:
        events = [
            (e.asset.uri, e.extra["forgotten"])
            for e in session.query(AssetEvent).all()
            if e.asset.uri.endswith("/prune")
        ]
    assert events == [(f"kubecost-etl://{CLUSTER}/prune", [oldest])]  # the dry run announced nothing

    restore = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "snapshot": rest[0], "restart": False}
    )
    assert restore.state == "success", states(restore)
    assert tree_digests(etl) == trees[rest[0]]  # the oldest kept snapshot, byte for byte


def test_a_cluster_without_a_policy_is_refused_in_one_try_and_nothing_is_deleted(airflow_db, cluster):
    _, _, store = cluster
    run_backup(CLUSTER)
    before = files(store)

    run = load_dag("kubecost_etl_prune").test(run_conf={"clusters": ["no-policy"]})  # real retry settings

    assert run.state == "failed"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert tis["select_clusters"].state == "failed" and tis["select_clusters"].try_number == 1
    assert tis["summary"].state == "failed" and tis["summary"].try_number == 1  # a verdict, never retried
    assert files(store) == before
