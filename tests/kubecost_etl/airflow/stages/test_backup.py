"""The backup stages as Airflow calls them: by cluster id, with the configuration file."""

from __future__ import annotations

import yaml
from kubecost_etl.airflow.stages import backup as stages
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.filesystem import FilesystemStore


def configure(monkeypatch, tmp_path, sim) -> None:
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "id": "alpha",
                        "kubeconfig": str(sim.kubeconfig),
                        "backup": {
                            "object_store": {
                                "type": "FILESYSTEM",
                                "config": {"directory": str(tmp_path / "store")},
                            }
                        },
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))


def test_a_pod_replaced_between_tasks_is_found_again(simulator, tmp_path, monkeypatch):
    sim = simulator()
    configure(monkeypatch, tmp_path, sim)
    target = stages.find_pod("alpha")
    old_pod = target["pod"]["name"]
    new_pod = sim.restart_pod()  # Kubecost restarted after find_pod, before plan
    plan = stages.plan("alpha", target)
    streamed = stages.stream("alpha", target, plan)
    snapshot_id = stages.commit("alpha", target, plan, streamed)
    assert new_pod != old_pod
    manifest = Repository(FilesystemStore(tmp_path / "store"), "alpha").load_manifest(snapshot_id)
    assert stages.verify("alpha", snapshot_id)["snapshot_id"] == snapshot_id
    assert len(manifest.files) == len(plan["reuse"]) + len(plan["transfer"]) > 0
