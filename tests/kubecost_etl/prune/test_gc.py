"""Prune on real servers (moto S3, the GCS emulator, Azurite, a directory) after real backups from the
simulator: what remains verifies, the bucket holds exactly what the remaining manifests name (plus
what the margin protects), a dry run reports the same and deletes nothing, a killed prune is
finished by the next one, and a backup running meanwhile loses nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from kubecost_etl.prune.gc import PruneRefused, collect, forget, prune
from kubecost_etl.prune.settings import RetentionSettings
from kubecost_etl.snapshots.repository import Manifest, Repository, new_snapshot_id
from kubecost_etl.snapshots.verify import verify_snapshot

from tests.etl_trees import make_etl_dir

from ..stores_under_test import STORE_PREFIX
from .helpers import CLUSTER, ROOT, back_up_now, change_tree, manifest_objects, stored_tree

KEEP_TWO = RetentionSettings(keep_last=2)
REPO_ROOT = Path(__file__).resolve().parents[3]


def object_keys(store) -> set[str]:
    return {info.key for info in store.list(ROOT + "objects/")}


def young_marker(repo: Repository):
    """An object no manifest names, stored after every backup: the prune's clock is set so that it is
    exactly as old as the margin allows (younger objects are kept)."""
    key = repo.key("objects/sha256/ff/" + "f" * 64 + ".zst")
    repo.store.put_bytes(key, b"uploaded by a backup that has not committed yet")
    return repo.store.stat(key)


def backups(sim, repo, count: int) -> dict[str, dict[str, str]]:
    trees = {}
    for step in range(count):
        snapshot_id, tree = back_up_now(sim, repo)
        trees[snapshot_id] = tree
        change_tree(sim.etl_dir, step)
    return trees


def test_prune_leaves_exactly_what_the_remaining_snapshots_need(store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=5))
    repo = Repository(store.store, CLUSTER)
    trees = backups(sim, repo, 4)
    young = young_marker(repo)
    now = young.last_modified + KEEP_TWO.margin  # the marker is just young enough to stay
    names_before = sorted(store.raw_names())

    dry = prune(repo, KEEP_TWO, dry_run=True, now=now)
    assert sorted(store.raw_names()) == names_before  # a dry run deletes nothing
    report = prune(repo, KEEP_TWO, dry_run=False, now=now)

    assert report.comparable() == dry.comparable()  # and lists exactly what the real run then did
    kept = sorted(trees)[-2:]
    assert [d.snapshot_id for d in report.kept] == kept[::-1]
    assert {d.snapshot_id: d.reasons for d in report.forgotten} == {s: ("policy",) for s in sorted(trees)[:2]}
    assert repo.snapshot_ids() == kept
    for snapshot_id in kept:
        assert verify_snapshot(repo, snapshot_id, full=True)["ok"]
        assert stored_tree(store.store, snapshot_id) == trees[snapshot_id]
    remaining = object_keys(store.store)
    protected = {i.key for i in store.store.list(ROOT + "objects/") if i.last_modified >= young.last_modified}
    assert young.key in protected
    assert remaining == manifest_objects(store.store, kept) | protected
    raw = [n.removeprefix(STORE_PREFIX + "/") for n in store.raw_names()]
    assert not [n for n in raw if any(f"/snapshots/{s}/" in n for s in sorted(trees)[:2])]
    assert report.objects_deleted > 0 and report.bytes_deleted > 0
    assert report.objects_remaining == len(remaining) and report.objects_young == len(
        protected - manifest_objects(store.store, kept)
    )
    assert report.bytes_remaining == sum(i.size for i in store.store.list(ROOT + "objects/"))
    assert report.records_deleted == 2

    again = prune(repo, KEEP_TWO, dry_run=False, now=now)  # nothing left to do
    assert again.forgotten == () and again.objects_deleted == 0 and again.records_deleted == 0


def test_a_prune_stopped_after_forgetting_leaves_a_repository_that_verifies(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=6))
    repo = Repository(fs_store, CLUSTER)
    trees = backups(sim, repo, 3)
    now = max(i.last_modified for i in fs_store.list(ROOT)) + KEEP_TWO.margin + timedelta(seconds=1)

    first = prune(repo, KEEP_TWO, dry_run=False, now=now, stop_after_forget=True)  # killed between phases

    assert first.forgotten == [sorted(trees)[0]]
    assert repo.snapshot_ids() == sorted(trees)[1:]
    for snapshot_id in repo.snapshot_ids():
        assert verify_snapshot(repo, snapshot_id, full=True)["ok"]
    leftovers = object_keys(fs_store) - manifest_objects(fs_store, repo.snapshot_ids())
    assert leftovers

    second = prune(repo, KEEP_TWO, dry_run=False, now=now)
    assert second.forgotten == () and second.objects_deleted == len(leftovers)
    assert object_keys(fs_store) == manifest_objects(fs_store, repo.snapshot_ids())


def test_a_deleted_objects_quarantine_record_goes_with_it(fs_store, simulator, tmp_path):
    """The oldest snapshot's own verify found its new object damaged (failed, forgotten after the margin):
    prune deletes the object and its quarantine record. An object the newest snapshot names stays in
    quarantine, so the next backup still writes it again."""
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=7))
    repo = Repository(fs_store, CLUSTER)
    trees = backups(sim, repo, 3)
    oldest, newest = sorted(trees)[0], sorted(trees)[-1]
    others = manifest_objects(fs_store, sorted(trees)[1:])
    only_oldest = sorted(manifest_objects(fs_store, [oldest]) - others)[0]
    only_newest = sorted(
        manifest_objects(fs_store, [newest]) - manifest_objects(fs_store, sorted(trees)[:-1])
    )[0]
    failed = {**repo.load_verification(oldest), "ok": False, "integrity_ok": False}
    repo.record_verification(oldest, failed)
    for key, snapshot_id in ((only_oldest, oldest), (only_newest, newest)):
        repo.quarantine(key.removeprefix(ROOT), "found wrong", snapshot_id)
    now = max(i.last_modified for i in fs_store.list(ROOT)) + KEEP_TWO.margin + timedelta(seconds=1)

    dry = prune(repo, KEEP_TWO, dry_run=True, now=now)
    assert dry.objects_deleted and len(repo.quarantined()) == 2  # a dry run lifts nothing
    report = prune(repo, KEEP_TWO, dry_run=False, now=now)

    assert [d.snapshot_id for d in report.forgotten] == [oldest]
    assert only_oldest not in object_keys(fs_store)
    assert repo.quarantined() == {only_newest.removeprefix(ROOT)}


KILLED_PRUNE = """
import os, signal, sys
from datetime import datetime
from kubecost_etl.prune.gc import prune
from kubecost_etl.prune.settings import RetentionSettings
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.filesystem import FilesystemStore

store = FilesystemStore(sys.argv[1], sys.argv[2])
real_delete = store.delete

def delete_then_die(keys):
    real_delete(list(keys))  # the first delete of phase 1: the forgotten manifests
    os.kill(os.getpid(), signal.SIGKILL)

store.delete = delete_then_die
prune(Repository(store, sys.argv[3]), RetentionSettings(keep_last=1), dry_run=False,
      now=datetime.fromisoformat(sys.argv[4]))
"""


def test_a_prune_killed_in_phase_one_is_finished_by_the_next(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=7))
    repo = Repository(fs_store, CLUSTER)
    trees = backups(sim, repo, 3)
    now = max(i.last_modified for i in fs_store.list(ROOT)) + timedelta(days=2)
    env = {"PYTHONPATH": f"{REPO_ROOT / 'include'}", "PATH": "/usr/bin:/bin"}

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PRUNE, str(fs_store.root), STORE_PREFIX, CLUSTER, now.isoformat()],
        env=env,
        capture_output=True,
        timeout=120,
    )

    assert killed.returncode == -9, killed.stderr.decode()
    newest = sorted(trees)[-1]
    assert repo.snapshot_ids() == [newest]  # the manifests went first: no half-deleted snapshot is visible
    orphans = [s for s in sorted(trees)[:-1] if fs_store.stat(repo.verification_key(s))]
    assert orphans == sorted(trees)[:-1]  # their records were still to go
    assert repo.latest_good() == newest
    assert verify_snapshot(repo, newest, full=True)["ok"]

    finished = prune(repo, RetentionSettings(keep_last=1), dry_run=False, now=now)
    assert finished.forgotten == () and finished.records_deleted == 2 and finished.objects_deleted > 0
    assert [i.key for i in fs_store.list(ROOT + "snapshots/")] == [
        repo.manifest_key(newest),
        repo.verification_key(newest),
    ]
    assert object_keys(fs_store) == manifest_objects(fs_store, [newest])
    assert stored_tree(fs_store, newest) == trees[newest]


def test_a_backup_streaming_while_prune_runs_loses_nothing(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=8))
    repo = Repository(fs_store, CLUSTER)
    trees = backups(sim, repo, 3)  # the tree changed after the last one: the next backup uploads
    # Garbage a killed run left; no snapshot is forgotten here: a backup may reuse a forgotten snapshot's
    # stored object, which no age protects (the lease does; README "Retention").
    garbage = [repo.key(f"objects/sha256/00/{i:064d}.zst") for i in range(3)]
    for key in garbage:
        fs_store.put_bytes(key, b"left by a killed run")
    keep = RetentionSettings(keep_last=3)
    first_upload, prune_done, results = threading.Event(), threading.Event(), {}
    real_put = fs_store.put

    def put_and_wait(key, chunks, **kw):
        info = real_put(key, chunks, **kw)
        if key.startswith(ROOT + "objects/") and not first_upload.is_set():
            results["first_object"] = fs_store.stat(key)
            first_upload.set()
            assert prune_done.wait(120)  # the backup stays mid-stream until the prune has finished
        return info

    fs_store.put = put_and_wait

    def run_backup():
        try:
            results["backup"] = back_up_now(sim, Repository(fs_store, CLUSTER))
        except BaseException as exc:  # reported to the main thread
            results["error"] = exc
            first_upload.set()

    # The prune's clock: everything stored before this backup is older than the margin, everything it
    # uploads younger (it uploads several objects at once, so its first finished one is not its oldest).
    cutoff = max(i.last_modified for i in fs_store.list(ROOT)) + timedelta(milliseconds=1)
    thread = threading.Thread(target=run_backup)
    thread.start()
    assert first_upload.wait(120) and "error" not in results
    assert results["first_object"].last_modified >= cutoff
    now = cutoff + keep.margin
    try:
        report = prune(repo, keep, dry_run=False, now=now)
    finally:
        prune_done.set()
        thread.join(120)
    assert "error" not in results, results.get("error")

    snapshot_id, tree = results["backup"]
    assert report.objects_deleted == len(garbage) and report.objects_young > 0
    assert not [key for key in garbage if fs_store.stat(key)]
    assert verify_snapshot(repo, snapshot_id, full=True)["ok"]
    assert stored_tree(fs_store, snapshot_id) == tree
    assert repo.snapshot_ids() == sorted([*trees, snapshot_id])


def test_a_manifest_committed_during_collection_spares_the_objects_it_reuses(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=9))
    repo = Repository(fs_store, CLUSTER)
    oldest = sorted(backups(sim, repo, 3))[0]
    saved = Manifest.from_json(fs_store.read_bytes(repo.manifest_key(oldest)))
    now = max(i.last_modified for i in fs_store.list(ROOT)) + timedelta(days=2)
    assert forget(repo, RetentionSettings(keep_last=1), dry_run=False, now=now).forgotten[-1] == oldest
    orphans = object_keys(fs_store) - manifest_objects(fs_store, repo.snapshot_ids())
    assert orphans
    late = new_snapshot_id()

    def a_backup_commits(batch):
        # A backup that found the old content still stored (the pod went back to it) and reused
        # those objects commits its manifest while the collection runs.
        if late not in repo.snapshot_ids():
            repo.commit(dataclasses.replace(saved, snapshot_id=late))

    collected = collect(
        repo, RetentionSettings(keep_last=1), dry_run=False, now=now, on_batch=a_backup_commits
    )

    assert collected.spared_late == len(orphans & manifest_objects(fs_store, [late])) > 0
    assert verify_snapshot(repo, late, full=True)["ok"]
    assert object_keys(fs_store) == manifest_objects(fs_store, repo.snapshot_ids())


def test_an_unreadable_manifest_stops_the_collection_before_any_delete(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=10))
    repo = Repository(fs_store, CLUSTER)
    snapshots = sorted(backups(sim, repo, 3))
    now = max(i.last_modified for i in fs_store.list(ROOT)) + timedelta(days=2)
    forget(repo, RetentionSettings(keep_last=1), dry_run=False, now=now)
    fs_store.put_bytes(repo.manifest_key(snapshots[0]), b"{not json")  # someone put back a broken manifest
    before = object_keys(fs_store)

    with pytest.raises(PruneRefused, match=rf"manifest of snapshot '{snapshots[0]}' .* cannot be read"):
        collect(repo, RetentionSettings(keep_last=1), dry_run=False, now=now)
    assert object_keys(fs_store) == before


def test_prune_sees_a_snapshot_naming_a_quarantined_object_as_not_restorable(fs_store, simulator, tmp_path):
    sim = simulator(make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=6000, seed=8))
    repo = Repository(fs_store, CLUSTER)
    trees = backups(sim, repo, 3)
    newest = sorted(trees)[-1]
    only_newest = sorted(
        manifest_objects(fs_store, [newest]) - manifest_objects(fs_store, sorted(trees)[:-1])
    )
    repo.quarantine(only_newest[0].removeprefix(ROOT), "found wrong", newest)
    now = max(i.last_modified for i in fs_store.list(ROOT)) + KEEP_TWO.margin + timedelta(seconds=1)

    report = prune(repo, RetentionSettings(keep_last=1), dry_run=False, now=now)

    assert {d.snapshot_id: d.reasons for d in report.kept} == {
        newest: ("quarantine",),
        sorted(trees)[1]: ("last", "newest-verified"),  # the newest restorable copy
    }
    assert repo.latest_good() == sorted(trees)[1]
