"""kubecost_etl_share and kubecost_etl_import in a real Airflow (dag.test) against the simulator and a
filesystem store; the imported archive then goes back into the pod through kubecost_etl_restore."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.filesystem import FilesystemStore

from tests.etl_trees import make_etl_dir, tree_digests
from tests.kubecost_etl.share.env import download_etl_archive

from .dag_loading import load_dag
from .one_cluster import CLUSTER, filesystem_cluster


@pytest.fixture
def cluster(tmp_path, monkeypatch, simulator):
    sim, etl, store = filesystem_cluster(tmp_path, monkeypatch, simulator, seed=5)
    return sim, etl, FilesystemStore(store)


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_share_run_writes_a_bundle_of_the_window(cluster, airflow_db, tmp_path):
    _, etl, store = cluster
    share_dag = load_dag("kubecost_etl_share", retries=0)

    run = share_dag.test(
        run_conf={
            "cluster": CLUSTER,
            "window": "yesterday",
            "source": "pod",
            "pipelines": ["allocations"],
            "resolutions": ["1d"],
        }
    )

    assert run.state == "success", states(run)
    [bundle] = [i.key for i in store.list("kubecost-etl-share/") if i.key.endswith(".tar.gz")]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(store.root / bundle), "-C", str(out)], check=True)
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    assert [
        p.relative_to(out / "kc-etl-tmp").as_posix() for p in (out / "kc-etl-tmp").rglob("*") if p.is_file()
    ] == [p.relative_to(etl).as_posix() for p in sorted(etl.glob("bingen/allocations/1d/*"))][-2:-1]


def test_a_bad_window_fails_the_share_run_without_a_bundle(cluster, airflow_db):
    _, _, store = cluster
    run = load_dag("kubecost_etl_share", retries=0).test(run_conf={"cluster": CLUSTER, "window": "7x"})
    assert run.state == "failed" and states(run) == {"preflight": "failed", "bundle": "upstream_failed"}
    assert list(store.list("")) == []


def test_a_download_etl_archive_imports_then_restores_byte_identical(cluster, airflow_db, tmp_path):
    _, etl, store = cluster
    original = tree_digests(etl)
    store.put_bytes("uploads/kubecost-etl.tar.gz", download_etl_archive(etl, tmp_path / "download"))
    for path in sorted(p for p in etl.rglob("*") if p.is_file())[:3]:
        path.unlink()

    imported = load_dag("kubecost_etl_import", retries=0).test(
        run_conf={"cluster": CLUSTER, "archive": "uploads/kubecost-etl.tar.gz"}
    )
    assert imported.state == "success", states(imported)
    [snapshot] = Repository(store, CLUSTER).snapshot_ids()

    restored = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "snapshot": snapshot, "restart": False}
    )
    assert restored.state == "success", states(restored)
    assert tree_digests(etl) == original


def test_a_hostile_archive_fails_the_import_run_with_nothing_written(cluster, airflow_db, tmp_path):
    _, _, store = cluster
    (tmp_path / "evil" / "kc-etl-tmp" / "bingen").mkdir(parents=True)
    (tmp_path / "evil" / "kc-etl-tmp" / "bingen" / "link").symlink_to("/etc/passwd")
    subprocess.run(["tar", "czf", "evil.tar.gz", "kc-etl-tmp"], cwd=tmp_path / "evil", check=True)
    store.put_bytes("uploads/evil.tar.gz", (tmp_path / "evil" / "evil.tar.gz").read_bytes())

    run = load_dag("kubecost_etl_import", retries=0).test(
        run_conf={"cluster": CLUSTER, "archive": "uploads/evil.tar.gz"}
    )

    assert run.state == "failed" and states(run) == {
        "check_archive": "failed",
        "record_archive": "upstream_failed",
    }
    assert [i.key for i in store.list("")] == ["uploads/evil.tar.gz"]


def test_a_share_from_the_pod_needs_nothing_the_shipped_role_lacks(
    tmp_path, monkeypatch, simulator, airflow_db
):
    role = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
    etl = make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=10_000, seed=6)
    sim = simulator(
        etl, no_tar=True, rbac_role=role
    )  # a debug container reads the files, as Kubecost's scripts do
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "id": CLUSTER,
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

    run = load_dag("kubecost_etl_share", retries=0).test(run_conf={"cluster": CLUSTER, "source": "pod"})

    assert run.state == "success", states(run)
    report = sim.rbac_report()
    assert report["denied"] == [] and report["used"]
