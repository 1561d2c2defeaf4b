"""The restore's decisions that need no pod: manifest refusals, snapshot choice, plans, moves, retention,
the workload a restart rolls."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from kubecost_etl.kube.pod_files import PodFile
from kubecost_etl.kube.pods import PodRef
from kubecost_etl.kube.rollout import RolloutError, Workload, owning_workload
from kubecost_etl.restore.plan import FILL_MISSING, REPLACE, PodTree, plan_restore, same_size_paths
from kubecost_etl.restore.pod_dirs import RestoreDirs, restore_token
from kubecost_etl.restore.post_check import expired
from kubecost_etl.restore.swap import plan_moves
from kubecost_etl.snapshots.pinned import (
    RestoreRefused,
    check_snapshot_id,
    load_pinned,
    manifest_problems,
    resolve_snapshot,
)
from kubecost_etl.snapshots.repository import FileEntry, Manifest, Repository, object_key

CLUSTER = "cluster-a"


def entry(path: str, data: bytes = b"x", mtime: int = 100) -> FileEntry:
    digest = hashlib.sha256(data).hexdigest()
    return FileEntry(path, len(data), mtime, digest, object_key(digest, "zstd"), 10, "zstd")


def manifest(*files: FileEntry, snapshot_id: str = "20260101T000000Z-aaaaaa") -> Manifest:
    return Manifest(snapshot_id, CLUSTER, "2026-01-01T00:00:00Z", list(files))


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (lambda e: replace(e, path="../../etc/cron.d/x"), "not allowed"),
        (lambda e: replace(e, path="/etc/passwd"), "only relative paths"),
        (lambda e: replace(e, path="bingen/./x"), "not allowed"),
        (lambda e: replace(e, object="objects/sha256/00/other.zst"), "not the key"),
        (lambda e: replace(e, object="../../other-cluster/objects/x.zst"), "not the key"),
        (lambda e: replace(e, sha256="ABC"), "64 lowercase hex"),
        (lambda e: replace(e, size=-1), "size"),
        (lambda e: replace(e, mtime="yesterday"), "mtime"),
        (lambda e: replace(e, compression="lz4"), "unknown compression"),
    ],
)
def test_tampered_entries_are_refused(tamper, problem):
    problems = manifest_problems(
        manifest(entry("bingen/a"), tamper(entry("bingen/b"))), CLUSTER, "20260101T000000Z-aaaaaa"
    )
    assert any(problem in p for p in problems), problems


def test_structural_problems_are_refused():
    snapshot = "20260101T000000Z-aaaaaa"
    assert any("twice" in p for p in manifest_problems(manifest(entry("a"), entry("a")), CLUSTER, snapshot))
    assert any(
        "as a directory" in p
        for p in manifest_problems(manifest(entry("a"), entry("a/b")), CLUSTER, snapshot)
    )
    assert any("no files" in p for p in manifest_problems(manifest(), CLUSTER, snapshot))
    assert any("names snapshot" in p for p in manifest_problems(manifest(entry("a")), "other", snapshot))
    assert manifest_problems(manifest(entry("bingen/a"), entry("bingen/b")), CLUSTER, snapshot) == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "-rf", ".hidden", "a..b"])
def test_snapshot_ids_from_users_are_checked(bad):
    with pytest.raises(RestoreRefused):
        check_snapshot_id(bad)


def test_latest_means_newest_verified_before_the_run_and_a_pinned_manifest_cannot_change(fs_store):
    repo = Repository(fs_store, CLUSTER)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ids = {
        name: (now + delta).strftime("%Y%m%dT%H%M%SZ") + "-abcdef"
        for name, delta in [
            ("old", timedelta(days=-2)),
            ("unverified", timedelta(days=-1)),
            ("after_start", timedelta(minutes=5)),
        ]
    }
    for name, snapshot_id in ids.items():
        repo.commit(manifest(entry("bingen/a"), snapshot_id=snapshot_id))
        repo.record_verification(snapshot_id, {"ok": name != "unverified"})
    assert resolve_snapshot(repo, "latest", now) == ids["old"]
    assert resolve_snapshot(repo, ids["unverified"], now) == ids["unverified"]  # named explicitly: allowed
    with pytest.raises(RestoreRefused, match="does not exist"):
        resolve_snapshot(repo, "20200101T000000Z-000000", now)
    with pytest.raises(RestoreRefused, match="no verified snapshot"):
        resolve_snapshot(repo, "latest", now - timedelta(days=30))

    pinned = load_pinned(repo, ids["old"])
    body = json.loads(repo.store.read_bytes(repo.manifest_key(ids["old"])))
    body["files"][0]["path"] = "../escape"
    repo.store.put_bytes(repo.manifest_key(ids["old"]), json.dumps(body).encode())
    with pytest.raises(RestoreRefused, match="changed since"):
        load_pinned(repo, ids["old"], pinned.sha256)
    with pytest.raises(RestoreRefused, match="not allowed"):
        load_pinned(repo, ids["old"])
    repo.store.put_bytes(
        repo.manifest_key(ids["old"]), b'{"format": "kubecost-etl-backup/v1", "files": [{}]}'
    )
    with pytest.raises(RestoreRefused, match="not readable"):
        load_pinned(repo, ids["old"])


def tree(*files: tuple[str, int, int], dirs=(), others=()) -> PodTree:
    return PodTree(True, [PodFile(p, s, m) for p, s, m in files], set(dirs), list(others), [])


def test_replace_plan_adds_replaces_removes_and_tells_equal_files_by_hash():
    same, changed = entry("b/same", b"1111"), entry("b/changed", b"2222")
    files = [entry("b/new", b"new"), same, changed]
    pod = tree(("b/same", 4, 100), ("b/changed", 4, 100), ("b/extra", 9, 5), dirs=["b"])
    assert same_size_paths(files, pod) == ["b/same", "b/changed"]
    digests = {"b/same": same.sha256, "b/changed": hashlib.sha256(b"other").hexdigest()}
    plan = plan_restore(REPLACE, "s", files, pod, digests)
    assert [f["path"] for f in plan.add] == ["b/new"]
    assert [f["path"] for f in plan.replace] == ["b/changed"]
    assert plan.remove == [{"path": "b/extra", "size": 9}]
    assert plan.unchanged == 1 and plan.compared_by == "sha256"
    assert "replace  b/changed (4 -> 4 bytes)" in plan.lines()
    without_sha = plan_restore(REPLACE, "s", files, pod, None)
    assert without_sha.compared_by == "size+mtime" and without_sha.unchanged == 2


def test_fill_missing_plan_writes_only_absent_files_and_never_through_links():
    files = [entry("b/here", b"1"), entry("b/gone", b"2"), entry("f/under-a-file", b"3"), entry("d", b"4")]
    pod = tree(("b/here", 7, 1), ("f", 1, 1), dirs=["b", "d"])
    plan = plan_restore(FILL_MISSING, "s", files, pod, None)
    assert [f["path"] for f in plan.add] == ["b/gone"]
    assert [f["path"] for f in plan.keep] == ["b/here"] and plan.keep[0]["differs"]
    assert plan.lines() == [
        "add      b/gone (1 bytes)",
        "keep     b/here (differs from the snapshot; exists in the pod, so left as it is)",
        "skip     f/under-a-file (the pod has a file at f)",
        "skip     d (the pod has a directory there)",
    ]
    assert {f["path"] for f in plan.blocked} == {"f/under-a-file", "d"}
    assert plan.remove == [] and plan.replace == []
    with pytest.raises(RestoreRefused, match="link or special"):
        plan_restore(FILL_MISSING, "s", [entry("lnk/x")], tree(others=["lnk"]), None)
    with pytest.raises(RestoreRefused, match="unknown mode"):
        plan_restore("merge", "s", files, pod, None)


def test_moves_take_whole_missing_directories_and_skip_what_exists():
    staged = ["a/1d/x", "a/1d/y", "a/1h/z", "new/deep/f", "top"]
    moves = plan_moves(staged, live_files={"a/1d/y"}, live_dirs={"a", "a/1d"})
    assert moves == {"": ["new", "top"], "a": ["a/1h"], "a/1d": ["a/1d/x"]}
    assert plan_moves(["f/under"], live_files={"f"}, live_dirs=set()) == {}


def test_retention_expiry_of_set_files():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    hour = int(now.timestamp()) - 51 * 3600  # ends 50 h ago
    assert expired(f"bingen/allocations/1h/{hour}-{hour + 3600}", now, hourly_hours=49)
    assert not expired(f"bingen/allocations/1h/{hour}-{hour + 3600}", now, hourly_hours=72)
    day = int(now.timestamp()) // 86400 * 86400 - 100 * 86400
    assert expired(f"bingen/assets/1d/{day}-{day + 86400}", now, hourly_hours=49)
    assert not expired("cloudcosts/whatever", now, hourly_hours=49)


def test_dir_names_are_siblings_stable_per_run():
    dirs = RestoreDirs(
        "/proc/1/root/var/configs/db/etl", restore_token("20260101T000000Z-aaaaaa", "manual__1")
    )
    assert dirs.parent == "/proc/1/root/var/configs/db"
    assert dirs.staging.startswith("/proc/1/root/var/configs/db/etl.restore-20260101T000000Z-aaaaaa-")
    assert (
        dirs.token == restore_token("20260101T000000Z-aaaaaa", "manual__1") != restore_token("x", "manual__2")
    )
    assert {dirs.staging, dirs.previous, dirs.discarded} == {
        dirs.live + s + dirs.token for s in (".restore-", ".previous-", ".discarded-")
    }
    assert dirs.as_dict() == {
        "live": dirs.live,
        "staging": dirs.staging,
        "previous": dirs.previous,
        "discarded": dirs.discarded,
    }


def fake_apis(pod_owner: tuple[str, str] | None, replica_set_owner: tuple[str, str] | None = None):
    """Core and apps APIs that know one pod (and its ReplicaSet), owned as given: (kind, name)."""

    def metadata(owner):
        refs = [SimpleNamespace(kind=owner[0], name=owner[1], controller=True)] if owner else None
        return SimpleNamespace(metadata=SimpleNamespace(owner_references=refs))

    core = SimpleNamespace(read_namespaced_pod=lambda name, namespace: metadata(pod_owner))
    apps = SimpleNamespace(read_namespaced_replica_set=lambda name, namespace: metadata(replica_set_owner))
    return core, apps


POD = PodRef("kubecost", "kc-7d9-abcde", "uid-1", "cost-model")


@pytest.mark.parametrize(
    "pod_owner, replica_set_owner, kind",
    [
        (("ReplicaSet", "kc-7d9"), ("Deployment", "kc"), "Deployment"),
        (("StatefulSet", "kc"), None, "StatefulSet"),
    ],
)
def test_the_workload_to_restart_is_the_pods_deployment_or_statefulset(pod_owner, replica_set_owner, kind):
    assert owning_workload(*fake_apis(pod_owner, replica_set_owner), POD) == Workload(kind, "kc", "kubecost")


@pytest.mark.parametrize(
    "pod_owner, found",
    [
        (None, "no controller"),
        (("ReplicaSet", "kc-7d9"), "ReplicaSet kc-7d9"),
        (("DaemonSet", "kc"), "DaemonSet kc"),
    ],
)
def test_a_pod_not_run_by_a_deployment_or_statefulset_is_not_restarted(pod_owner, found):
    with pytest.raises(RolloutError, match=re.escape(f"not run by a Deployment or StatefulSet ({found})")):
        owning_workload(*fake_apis(pod_owner), POD)
