"""Backups against the cluster simulator and real object stores, checked independently of the backup code."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest
import zstandard
from kubecost_etl.backup.commit import commit_snapshot
from kubecost_etl.backup.pipeline import back_up
from kubecost_etl.backup.plan import plan_backup
from kubecost_etl.backup.stream import stream_files
from kubecost_etl.config import BackupSettings, ObjectStoreRef
from kubecost_etl.kube.exec import ExecStreamCut
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import resolve_exec_target
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.snapshots.verify import verify_snapshot
from kubecost_sim.etlgen import generate

from tests.etl_trees import tree_digests

CLUSTER = "cluster-a"


def settings(**kw) -> BackupSettings:
    return BackupSettings(object_store=ObjectStoreRef(inline={}), **kw)


def snapshot_digests(store, snapshot_id: str) -> dict[str, str]:
    """Read a snapshot straight from the store, decompressing with the libraries themselves."""
    root = f"kubecost-etl-backup/{CLUSTER}/"
    manifest = json.loads(store.read_bytes(f"{root}snapshots/{snapshot_id}/manifest.json"))
    out = {}
    for entry in manifest["files"]:
        raw = store.read_bytes(root + entry["object"])
        data = (
            zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            if entry["compression"] == "zstd"
            else gzip.decompress(raw)
        )
        assert len(data) == entry["size"]
        out[entry["path"]] = hashlib.sha256(data).hexdigest()
    return out


def run_backup(sim, store, **kw):
    core = sim.core_v1()
    pod = find_cost_model_pod(core, "kubecost", "app=cost-analyzer")
    target = resolve_exec_target(core, pod, "/var/configs/db/etl")
    manifest, report = back_up(
        core, target, Repository(store, CLUSTER), settings(**kw), {"pod": pod.name}, full_verify=True
    )
    return manifest, report, target


@pytest.fixture
def etl_tree(tmp_path):
    root = tmp_path / "pvc" / "etl"
    generate(root, days=6, hourly_hours=12, file_bytes=40_000, seed=3)
    return root


def test_round_trip_on_every_store_kind(store, etl_tree, simulator):
    sim = simulator(etl_tree)
    manifest, report, target = run_backup(sim, store.store)
    assert report["ok"], report["problems"]
    assert not target.via_debug_container
    assert snapshot_digests(store.store, manifest.snapshot_id) == tree_digests(etl_tree)
    assert manifest.stats["transferred_files"] == len(manifest.files) > 0
    assert manifest.coverage["allocations/1d"]["files"] == 6


def test_incremental_runs_move_only_changes_and_old_snapshots_stay_intact(fs_store, etl_tree, simulator):
    sim = simulator(etl_tree)
    first, _, _ = run_backup(sim, fs_store)
    before = tree_digests(etl_tree)

    second, report, _ = run_backup(sim, fs_store)
    assert report["ok"]
    assert second.stats["transferred_files"] == 0 and second.stats["transferred_bytes"] == 0
    assert second.base_snapshot == first.snapshot_id
    assert snapshot_digests(fs_store, second.snapshot_id) == before

    files = sorted((p for p in etl_tree.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    changed, deleted = files[0], files[1]
    changed.write_bytes(changed.read_bytes()[:-10] + b"changed!!!")  # body changed, header intact
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 60))
    deleted.unlink()
    (etl_tree / "bingen" / "assets" / "1w").mkdir()  # a store the backup does not know: carried anyway
    (etl_tree / "bingen" / "assets" / "1w" / "extra").write_bytes(b"BGST" + b"\0" * 4 + b"\x15")  # added
    third, report, _ = run_backup(sim, fs_store)
    assert report["ok"]
    assert third.stats["transferred_files"] == 2
    assert snapshot_digests(fs_store, third.snapshot_id) == tree_digests(etl_tree)
    assert snapshot_digests(fs_store, first.snapshot_id) == before


def planned(sim, store):
    """The state between the plan and the stream stages: the client, the target, the repository, the plan."""
    core = sim.core_v1()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "/var/configs/db/etl"
    )
    repo = Repository(store, CLUSTER)
    return core, target, repo, plan_backup(core, target, repo, settings())


def test_a_cut_stream_commits_nothing_and_the_retry_succeeds(fs_store, etl_tree, simulator):
    sim = simulator(etl_tree)
    core, target, repo, plan = planned(sim, fs_store)
    sim.set_faults(exec_cut_after_bytes=100_000, exec_cut_times=1)
    with pytest.raises(ExecStreamCut):
        stream_files(core, target, repo, plan.transfer, settings())
    assert repo.snapshot_ids() == []
    streamed = stream_files(core, target, repo, plan.transfer, settings())  # the task's retry
    manifest = commit_snapshot(repo, plan, streamed, {})
    assert verify_snapshot(repo, manifest.snapshot_id, full=True)["ok"]
    assert snapshot_digests(fs_store, manifest.snapshot_id) == tree_digests(etl_tree)


def test_a_file_changed_after_planning_is_read_again(fs_store, etl_tree, simulator):
    core, target, repo, plan = planned(simulator(etl_tree), fs_store)
    victim = etl_tree / plan.transfer[0]["path"]
    victim.write_bytes(victim.read_bytes()[::-1])  # same size, new content: only the hash can tell
    grown = etl_tree / plan.transfer[1]["path"]
    grown.write_bytes(grown.read_bytes() + b"appended")  # a new size: the tar header tells
    streamed = stream_files(core, target, repo, plan.transfer, settings())
    manifest = commit_snapshot(repo, plan, streamed, {})
    assert snapshot_digests(fs_store, manifest.snapshot_id) == tree_digests(etl_tree)
    # the object for the stale hash was aborted, never completed under a wrong name
    stale = plan.transfer[0]["sha256"]
    assert not [k for k in repo.object_sizes() if stale in k]


def test_pod_without_tar_uses_a_debug_container(fs_store, etl_tree, simulator):
    sim = simulator(etl_tree, no_tar=True)
    manifest, report, target = run_backup(sim, fs_store)
    assert target.via_debug_container and target.etl_root == "/proc/1/root/var/configs/db/etl"
    assert report["ok"]
    assert snapshot_digests(fs_store, manifest.snapshot_id) == tree_digests(etl_tree)


def test_gzip_and_a_damaged_object_fails_verification(fs_store, etl_tree, simulator, tmp_path):
    sim = simulator(etl_tree)
    manifest, report, _ = run_backup(sim, fs_store, compression="gzip", compression_level=6)
    assert report["ok"] and all(f.object.endswith(".gz") for f in manifest.files)
    repo = Repository(fs_store, CLUSTER)
    assert repo.latest_good() == manifest.snapshot_id
    victim = manifest.files[0]
    fs_store.put_bytes(repo.key(victim.object), gzip.compress(b"not the original"))
    report = verify_snapshot(repo, manifest.snapshot_id, full=True)
    assert not report["ok"]
    assert any(victim.path in p for p in report["problems"])
    assert repo.latest_good() is None  # a snapshot that failed verification is never "latest good"


@pytest.fixture
def s3_behind_fault_proxy(moto_s3_server, unique_bucket_name):
    from kubecost_etl.storage.s3 import S3Store

    from tests.servers import FaultProxy

    moto_s3_server.client().create_bucket(Bucket=unique_bucket_name)
    with FaultProxy(moto_s3_server.url) as proxy:
        client = moto_s3_server.client(endpoint_url=proxy.url, max_attempts=3)
        yield proxy, S3Store(client, unique_bucket_name, "backups")


OBJECT_PUT = r"^/[^?]+/kubecost-etl-backup/cluster-a/objects/"


def test_storage_500s_are_retried_and_the_snapshot_is_exact(s3_behind_fault_proxy, etl_tree, simulator):
    proxy, store = s3_behind_fault_proxy
    proxy.fail_next("PUT", OBJECT_PUT, times=2)
    manifest, report, _ = run_backup(simulator(etl_tree), store)
    assert len(proxy.injected("PUT")) == 2
    assert report["ok"]
    assert snapshot_digests(store, manifest.snapshot_id) == tree_digests(etl_tree)


def test_storage_that_keeps_failing_commits_nothing(s3_behind_fault_proxy, etl_tree, simulator):
    from kubecost_etl.storage.base import StorageError

    proxy, store = s3_behind_fault_proxy
    proxy.fail_next("PUT", OBJECT_PUT, times=None)
    with pytest.raises(StorageError):
        run_backup(simulator(etl_tree), store)
    repo = Repository(store, CLUSTER)
    assert repo.snapshot_ids() == [] and repo.object_sizes() == {}
    proxy.clear()
    manifest, report, _ = run_backup(simulator(etl_tree), store)  # the retry, once storage is back
    assert report["ok"] and repo.snapshot_ids() == [manifest.snapshot_id]


def test_a_full_size_tree_fits_the_exec_request_limits(fs_store, tmp_path, simulator):
    # 91 daily + 49 hourly files per pipeline, as Kubecost keeps by default: far more paths than
    # one exec URL can carry behind an 8 KiB request-line limit (which the simulator enforces).
    root = tmp_path / "big" / "etl"
    generate(root, days=91, hourly_hours=49, file_bytes=2_000, seed=5)
    manifest, report, _ = run_backup(simulator(root, no_tar=True), fs_store)
    assert report["ok"] and len(manifest.files) == len(tree_digests(root)) >= 280


def test_a_damaged_set_file_in_the_pod_is_copied_but_fails_verification(fs_store, etl_tree, simulator):
    victim = sorted((etl_tree / "bingen" / "assets" / "1d").iterdir())[0]
    victim.write_bytes(b"XXXX" + victim.read_bytes()[4:])
    manifest, report, _ = run_backup(simulator(etl_tree), fs_store)
    assert report["integrity_ok"] and not report["ok"]  # the copy is exact; the source is damaged
    assert report["damaged"] == [
        {
            "path": f"bingen/assets/1d/{victim.name}",
            "reason": "bingen header check failed: missing BGST magic (starts with b'XXXX')",
        }
    ]
    assert snapshot_digests(fs_store, manifest.snapshot_id) == tree_digests(etl_tree)
    assert Repository(fs_store, CLUSTER).latest_good() is None


def test_a_wrong_etl_path_is_a_clear_error(fs_store, etl_tree, simulator):
    from kubecost_etl.kube.pod_files import EtlDirMissing, list_files

    sim = simulator(etl_tree)
    core = sim.core_v1()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "/var/db/etl"
    )
    with pytest.raises(EtlDirMissing, match="ETL directory /var/db/etl not found in pod"):
        list_files(core, target)


def test_links_and_unsafe_names_are_refused_not_carried(fs_store, etl_tree, simulator):
    day = sorted((etl_tree / "bingen" / "assets" / "1d").iterdir())[0]
    (etl_tree / "bingen" / "link-to-a-day").symlink_to(day)
    (etl_tree / "bingen" / "-rf").write_bytes(b"a name tar or find could take for a flag")
    core, target, repo, plan = planned(simulator(etl_tree), fs_store)
    carried = {t["path"] for t in plan.transfer} | {e["path"] for e in plan.reuse}
    assert "bingen/link-to-a-day" not in carried and "bingen/-rf" not in carried
    assert any("link-to-a-day" in reason for reason in plan.refused)
    assert any("'-rf'" in reason for reason in plan.refused)


def test_an_empty_etl_dir_is_refused_and_nothing_is_written(fs_store, tmp_path, simulator):
    from kubecost_etl.backup.plan import EmptyEtlDir
    from kubecost_etl.errors import Refusal

    root = tmp_path / "pvc" / "etl"
    (root / "bingen" / "allocations" / "1d").mkdir(parents=True)  # the layout without a single file
    sim = simulator(root)
    with pytest.raises(EmptyEtlDir, match=r"cluster 'cluster-a': the ETL dir .* holds no files") as refused:
        run_backup(sim, fs_store)
    assert isinstance(refused.value, Refusal)
    assert list(fs_store.list("")) == []  # no object, no manifest: nothing can become latest good
    assert Repository(fs_store, CLUSTER).latest_good() is None
