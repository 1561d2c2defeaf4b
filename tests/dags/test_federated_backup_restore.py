"""backup.source: federated end to end: the pod federated into a bucket, the bucket snapshotted by the backup
stages, the pod damaged, and the restore DAG (source: snapshot) giving the pod back byte-identical."""

from __future__ import annotations

import json

import pytest

from tests.etl_trees import make_etl_dir, tree_digests

from .dag_loading import load_dag

CLUSTER = "cluster-a"


@pytest.mark.slow
def test_federated_source_backup_then_restore_gives_the_pod_back(
    airflow_db, tmp_path, monkeypatch, simulator
):
    from kubecost_etl.airflow.stages import backup, federate

    etl = make_etl_dir(tmp_path, days=4, hourly_hours=6, file_bytes=20_000, seed=4)
    original = tree_digests(etl)
    sim = simulator(etl)
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "id": CLUSTER,
                        "kubeconfig": str(sim.kubeconfig),
                        "federated": {
                            "object_store": {
                                "type": "FILESYSTEM",
                                "config": {"directory": str(tmp_path / "bucket")},
                            },
                            "cluster_id": "kc-a",
                            "install_id": "test-install",
                        },
                        "backup": {
                            "source": "federated",
                            "object_store": {
                                "type": "FILESYSTEM",
                                "config": {"directory": str(tmp_path / "repo")},
                            },
                        },
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    assert federate.select_clusters(None) == [CLUSTER]
    target = federate.find_pod(CLUSTER)
    plan = federate.plan(CLUSTER, target)
    pushed = federate.push(CLUSTER, target, plan)
    assert federate.verify(CLUSTER, target, plan, pushed)["ok"]

    source = backup.find_pod(CLUSTER)
    assert source["source"] == "federated"  # no pod involved
    the_plan = backup.plan(CLUSTER, source)
    streamed = backup.stream(CLUSTER, source, the_plan)
    snapshot_id = backup.commit(CLUSTER, source, the_plan, streamed)
    assert backup.verify(CLUSTER, snapshot_id)["objects"] == len(original)

    for path in sorted(p for p in etl.rglob("*") if p.is_file())[:3]:
        path.write_bytes(b"BGST damaged")
    run = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "snapshot": snapshot_id}
    )

    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert tree_digests(etl) == original
