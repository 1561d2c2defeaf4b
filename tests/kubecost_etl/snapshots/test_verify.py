"""Verify against a real S3 server (moto) behind a fault-injecting proxy: read errors never mark a
snapshot bad.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import zstandard
from kubecost_etl.snapshots import pinned, verify
from kubecost_etl.snapshots.repository import FileEntry, Manifest, Repository, new_snapshot_id, object_key
from kubecost_etl.storage.s3 import S3Store
from kubecost_etl.transfer.compression import compress

from tests.servers import FaultProxy

CLUSTER = "cluster-a"
S3_MAX_ATTEMPTS = 2  # the client's own retries; verify retries on top of them


@pytest.fixture
def repo_through_proxy(moto_s3_server, unique_bucket_name, monkeypatch):
    monkeypatch.setattr(verify, "READ_PAUSE_S", 0.0)
    moto_s3_server.client().create_bucket(Bucket=unique_bucket_name)
    with FaultProxy(moto_s3_server.url) as proxy:
        client = moto_s3_server.client(endpoint_url=proxy.url, max_attempts=S3_MAX_ATTEMPTS)
        yield proxy, Repository(S3Store(client, unique_bucket_name, "backups"), CLUSTER)


def snapshot(repo: Repository, contents: dict[str, bytes], made=None) -> tuple[str, dict[str, str]]:
    """A committed snapshot of ``contents``; returns its id and each path's object key."""
    files, keys = [], {}
    for path, data in contents.items():
        digest = hashlib.sha256(data).hexdigest()
        stored = b"".join(compress([data], "zstd", 3))
        key = object_key(digest, "zstd")
        repo.store.put_bytes(repo.key(key), stored)
        files.append(FileEntry(path, len(data), 1_700_000_000, digest, key, len(stored), "zstd"))
        keys[path] = key
    snapshot_id = new_snapshot_id(made)
    repo.commit(Manifest(snapshot_id, CLUSTER, "2026-01-01T00:00:00Z", files))
    return snapshot_id, keys


CONTENTS = {"misc/a.json": b'{"a": 1}' * 100, "misc/b.json": b'{"b": 2}' * 100}


def test_a_persistent_read_error_fails_without_a_verdict(repo_through_proxy):
    proxy, repo = repo_through_proxy
    snapshot_id, keys = snapshot(repo, CONTENTS)
    good = verify.verify_snapshot(repo, snapshot_id, full=True)
    assert good["ok"] and repo.latest_good() == snapshot_id
    recorded = repo.store.read_bytes(repo.verification_key(snapshot_id))

    proxy.fail_next("GET", keys["misc/b.json"] + "$", times=None)  # every read of one object: 500
    with pytest.raises(verify.VerifyReadError, match="no verdict recorded"):
        verify.verify_snapshot(repo, snapshot_id, full=True)
    with pytest.raises(verify.VerifyReadError):  # the restore's verify: retried by Airflow, not refused
        pinned.verify_pinned(repo, pinned.load_pinned(repo, snapshot_id))
    proxy.clear()
    assert repo.store.read_bytes(repo.verification_key(snapshot_id)) == recorded  # not rewritten
    assert repo.latest_good() == snapshot_id


def test_a_read_error_that_passes_is_retried_and_content_decides(repo_through_proxy):
    proxy, repo = repo_through_proxy
    snapshot_id, keys = snapshot(repo, CONTENTS)
    proxy.fail_next(
        "GET", keys["misc/a.json"] + "$", times=S3_MAX_ATTEMPTS
    )  # one verify read fails, then not
    report = verify.verify_snapshot(repo, snapshot_id, full=True)
    assert report["ok"] and report["problems"] == []

    size = repo.object_sizes()[keys["misc/a.json"]]
    repo.store.put_bytes(
        repo.key(keys["misc/a.json"]), b"x" * size
    )  # right size, content that does not match
    bad = verify.verify_snapshot(repo, snapshot_id, full=True)
    assert (
        not bad["ok"]
        and bad["problems"][0].startswith("misc/a.json: object")
        and "does not" in bad["problems"][0]
    )
    assert json.loads(repo.store.read_bytes(repo.verification_key(snapshot_id)))["ok"] is False
    assert repo.latest_good() is None


def test_a_quarantined_object_is_reread_by_every_verify_until_found_right(repo_through_proxy):
    """The sample may miss an object; quarantine may not: a second snapshot naming the damaged object
    fails even with no sample at all, and passes once the object is right (content decides, not size)."""
    _, repo = repo_through_proxy
    first, keys = snapshot(repo, CONTENTS)
    second, _ = snapshot(repo, CONTENTS)  # the same objects, as an incremental backup names them
    victim = keys["misc/a.json"]
    size = repo.object_sizes()[victim]
    repo.store.put_bytes(repo.key(victim), b"x" * size)

    found = verify.verify_snapshot(repo, first, full=True)
    assert not found["ok"] and found["quarantined"] == [victim]
    assert repo.quarantined() == {victim}
    assert repo.reusable_objects().keys() == {keys["misc/b.json"]}

    unsampled = verify.verify_snapshot(repo, second, sample=0)
    assert not unsampled["ok"] and any(victim in p for p in unsampled["problems"])
    assert repo.latest_good() is None

    # Written again with other zstd settings (a checksum in the frame): another size, the right content.
    rewritten = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(CONTENTS["misc/a.json"])
    repo.store.put_bytes(repo.key(victim), rewritten)
    assert repo.object_sizes()[victim] != size
    mended = verify.verify_snapshot(repo, second, sample=0)
    assert mended["ok"] and mended["released"] == [victim] and mended["quarantined"] == []
    assert repo.quarantined() == set() and repo.latest_good() == second


def test_latest_good_skips_a_snapshot_naming_an_object_found_damaged_later(repo_through_proxy):
    """A snapshot's own sample may have passed over an object that a later verify finds damaged: it is no
    longer "latest good" (what restore's `latest`, the next backup's base and the status page use)."""
    _, repo = repo_through_proxy
    day = datetime(2026, 1, 1, tzinfo=UTC)  # ids sort by their time: one second apart each
    older, _ = snapshot(repo, CONTENTS, day)
    newer, keys = snapshot(repo, {**CONTENTS, "misc/c.json": b'{"c": 3}' * 100}, day + timedelta(seconds=1))
    assert verify.verify_snapshot(repo, older, full=True)["ok"]
    assert verify.verify_snapshot(repo, newer, full=True)["ok"]
    assert repo.latest_good() == newer

    later, _ = snapshot(repo, {"misc/c.json": b'{"c": 3}' * 100}, day + timedelta(seconds=2))  # same object
    victim = keys["misc/c.json"]
    repo.store.put_bytes(repo.key(victim), b"x" * repo.object_sizes()[victim])
    assert verify.verify_snapshot(repo, later, full=True)["quarantined"] == [victim]

    assert repo.load_verification(newer)["ok"]  # its own verdict stands...
    assert repo.latest_good() == older  # ...but it is not restorable
