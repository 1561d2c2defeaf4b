"""The stream stage's concurrency and retries, against the simulator and real stores."""

from __future__ import annotations

import threading

import pytest
from kubecost_etl.backup import stream as stream_module
from kubecost_etl.backup.commit import commit_snapshot
from kubecost_etl.backup.stream import stream_files
from kubecost_etl.kube.exec import ExecStreamCut
from kubecost_etl.snapshots.verify import verify_snapshot
from kubecost_etl.storage.filesystem import FilesystemStore
from kubecost_sim.etlgen import generate

from tests.etl_trees import tree_digests
from tests.kubecost_etl.backup.test_pipeline import planned, settings, snapshot_digests
from tests.kubecost_etl.stores_under_test import make_s3


@pytest.fixture
def etl_tree(tmp_path):
    root = tmp_path / "pvc" / "etl"
    generate(root, days=10, hourly_hours=20, file_bytes=60_000, seed=4)
    return root


def tar_execs(sim) -> list[list[str]]:
    """The file lists of every `tar cf` exec the simulator served."""
    return [
        line["query"]["command"][5:]
        for line in sim.request_log_lines()
        if line["path"].endswith("/exec") and line["query"]["command"][:2] == ["tar", "cf"]
    ]


def test_a_retried_stream_sends_only_what_the_cut_one_did_not_store(
    moto_s3_server, unique_bucket_name, etl_tree, simulator
):
    """A worker killed (here: the exec cut) half-way: the retry lists the store, reuses every complete
    object, and asks the pod only for the rest."""
    s3 = make_s3(moto_s3_server, unique_bucket_name)
    sim = simulator(etl_tree)
    core, target, repo, plan = planned(sim, s3.store)
    total = sum(t["size"] for t in plan.transfer)
    sim.set_faults(exec_cut_after_bytes=total // 2, exec_cut_times=1)
    with pytest.raises(ExecStreamCut):
        stream_files(core, target, repo, plan.transfer, settings())
    stored_before = repo.object_sizes()
    assert 0 < len(stored_before) < len(plan.transfer)
    assert repo.snapshot_ids() == []

    streamed = stream_files(core, target, repo, plan.transfer, settings())  # the task's retry

    assert streamed.stats.reused_stored_files == len(stored_before)
    reused_paths = {t["path"] for t in plan.transfer if any(t["sha256"] in key for key in stored_before)}
    assert streamed.stats.bytes == total - sum(t["size"] for t in plan.transfer if t["path"] in reused_paths)
    assert not reused_paths & set(tar_execs(sim)[-1])  # never read from the pod again
    manifest = commit_snapshot(repo, plan, streamed, {})
    assert verify_snapshot(repo, manifest.snapshot_id, full=True)["ok"]
    assert snapshot_digests(s3.store, manifest.snapshot_id) == tree_digests(etl_tree)


class CountingStore(FilesystemStore):
    """A real filesystem store that records how many uploads run at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.threads: set[str] = set()

    def put(self, key, chunks, **kwargs):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return super().put(key, chunks, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def test_small_files_are_uploaded_concurrently_by_a_bounded_pool(tmp_path, etl_tree, simulator, monkeypatch):
    # The first two uploads wait for each other: if uploads ran one at a time, the barrier would time out.
    gate = threading.Barrier(2, timeout=30)

    class OverlapStore(CountingStore):
        singles = 0

        def _put_single(self, name, data, content_type, metadata=None):
            with self.lock:
                OverlapStore.singles += 1
                first_two = OverlapStore.singles <= 2
            if first_two:
                gate.wait()
            return super()._put_single(name, data, content_type, metadata)

    store = OverlapStore(tmp_path / "store")
    core, target, repo, plan = planned(simulator(etl_tree), store)
    streamed = stream_files(core, target, repo, plan.transfer, settings())

    assert 2 <= store.peak <= stream_module.UPLOAD_WORKERS
    assert all(name.startswith("upload") for name in store.threads)  # never on the reading thread
    manifest = commit_snapshot(repo, plan, streamed, {})
    assert snapshot_digests(store, manifest.snapshot_id) == tree_digests(etl_tree)


def test_a_failing_upload_stops_the_stream_and_nothing_is_left_half_done(tmp_path, etl_tree, simulator):
    from kubecost_etl.storage.base import StorageError

    class FailingStore(FilesystemStore):
        calls = 0

        def _put_single(self, name, data, content_type, metadata=None):
            FailingStore.calls += 1
            if FailingStore.calls == 5:
                raise StorageError("disk full (test)")
            return super()._put_single(name, data, content_type, metadata)

    store = FailingStore(tmp_path / "store")
    core, target, repo, plan = planned(simulator(etl_tree), store)
    before = set(threading.enumerate())
    with pytest.raises(StorageError, match="disk full"):
        stream_files(core, target, repo, plan.transfer, settings())
    assert repo.snapshot_ids() == []
    partial = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and "partial" in p.name]
    assert partial == []
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []  # no reader or upload thread left behind (threads of other fixtures do not count)
