"""The `ObjectStore` contract, run against every backend on a real server (see conftest's `store`)."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from kubecost_etl.storage import filesystem
from kubecost_etl.storage._shared import GCS_CHUNK_ALIGNMENT, S3_MIN_PART_SIZE, iter_parts
from kubecost_etl.storage.base import (
    ObjectNotFound,
    normalize_store_prefix,
    validate_key,
    validate_list_prefix,
)
from kubecost_etl.storage.filesystem import FilesystemStore
from kubecost_etl.storage.gcs import GCSStore
from kubecost_etl.storage.s3 import S3Store

from ..stores_under_test import STORE_PREFIX, TEST_PART_SIZE
from .payloads import MiB, failing_after, payload, payload_chunks, sha256_of


class ProducerFailed(Exception):
    pass


def test_small_object_round_trip(store):
    info = store.store.put_bytes("configs/a.json", b'{"ok": true}', content_type="application/json")

    assert (info.key, info.size) == ("configs/a.json", 12)
    assert store.read_raw("configs/a.json") == b'{"ok": true}'
    assert store.store.read_bytes("configs/a.json") == b'{"ok": true}'
    assert store.raw_names() == [f"{STORE_PREFIX}/configs/a.json"]


def test_empty_object(store):
    info = store.store.put("empty", iter([]))

    assert info.size == 0
    assert store.store.read_bytes("empty") == b""
    assert store.store.stat("empty").size == 0


@pytest.mark.parametrize(
    "size",
    [2 * TEST_PART_SIZE, 40 * MiB + 3],
    ids=["exactly-two-parts", "40MiB-odd"],
)
def test_large_streaming_put_is_byte_exact(store, size):
    info = store.store.put("snapshots/etl.tar.zst", payload_chunks(size, seed=size))

    assert info.size == size
    assert sha256_of([store.read_raw("snapshots/etl.tar.zst")]) == sha256_of(payload_chunks(size, seed=size))
    if store.kind == "s3":  # the multipart ETag "<md5>-<parts>" proves the multipart path was taken
        assert info.etag.endswith(f"-{-(-size // TEST_PART_SIZE)}")
    assert store.pending_uploads() == []


def test_open_read_streams_bounded_chunks(store):
    data = payload(12 * MiB + 5, seed=7)
    store.store.put("big.bin", payload_chunks(len(data), seed=7))

    chunks = list(store.store.open_read("big.bin", chunk_size=MiB))

    assert max(len(chunk) for chunk in chunks) <= MiB
    assert len(chunks) >= 13
    assert b"".join(chunks) == data


def test_missing_object_is_reported_at_once(store):
    with pytest.raises(ObjectNotFound) as raised:
        store.store.open_read("no/such/key")  # not iterated: the error must come from the call itself
    assert store.store.description in str(raised.value)
    assert "no/such/key" in str(raised.value)

    with pytest.raises(ObjectNotFound):
        store.store.read_bytes("no/such/key")


def test_stat(store):
    assert store.store.stat("absent") is None

    store.store.put_bytes("present", b"12345")
    info = store.store.stat("present")

    assert (info.key, info.size) == ("present", 5)
    assert isinstance(info.last_modified, datetime) and info.last_modified.tzinfo is not None


def test_list_filters_by_string_prefix_across_pages(store):
    daily = [f"daily/{day:03d}" for day in range(25)]  # 25 keys over pages of 7
    others = ["hourly/1", "hourly/2", "dailyx"]
    for key in daily + others:
        store.store.put_bytes(key, key.encode())

    listed = list(store.store.list("daily/"))

    assert [info.key for info in listed] == daily
    assert [info.size for info in listed] == [len(key) for key in daily]
    assert [info.key for info in store.store.list("daily")] == daily + ["dailyx"]
    assert [info.key for info in store.store.list()] == sorted(daily + others)
    assert list(store.store.list("nothing-here/")) == []


def test_overwrite_replaces_the_object(store):
    store.store.put_bytes("manifest.json", b"version 1")
    store.store.put_bytes("manifest.json", b"version 2")

    assert store.store.read_bytes("manifest.json") == b"version 2"
    assert [info.key for info in store.store.list()] == ["manifest.json"]


def test_delete_is_batched_and_ignores_missing_keys(store):
    keys = [f"old/{n:02d}" for n in range(30)]
    for key in keys + ["keep"]:
        store.store.put_bytes(key, b"x")

    store.store.delete(keys + ["old/never-existed"])

    assert [info.key for info in store.store.list()] == ["keep"]
    store.store.delete([])  # nothing to do is fine too


@pytest.mark.parametrize(
    "fail_after",
    [0, 2 * TEST_PART_SIZE + 1],
    ids=["before-first-part", "mid-multipart"],
)
def test_failed_producer_leaves_no_object_and_no_pending_upload(store, fail_after):
    chunks = failing_after(payload_chunks(20 * MiB), fail_after, ProducerFailed("source stream broke"))

    with pytest.raises(ProducerFailed):  # the producer's own error comes through unchanged
        store.store.put("snapshots/partial.tar", chunks)

    assert store.store.stat("snapshots/partial.tar") is None
    assert store.raw_names() == []
    assert store.pending_uploads() == []


def test_failed_overwrite_keeps_the_previous_object(store):
    store.store.put_bytes("snapshot.tar", b"the good one")
    chunks = failing_after(payload_chunks(20 * MiB), 2 * TEST_PART_SIZE + 1, ProducerFailed("broke"))

    with pytest.raises(ProducerFailed):
        store.store.put("snapshot.tar", chunks)

    assert store.store.read_bytes("snapshot.tar") == b"the good one"


# --- pure helpers (no server) ------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/", "../up", "a/./b", "a/.."])
def test_invalid_keys_are_rejected(key):
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["/abs", "../up", "a/../b/", "./x"])
def test_list_prefixes_that_climb_out_are_rejected(prefix):
    with pytest.raises(ValueError):
        validate_list_prefix(prefix)


@pytest.mark.parametrize(
    ("prefix", "normalized"), [("", ""), ("/", ""), ("tenant/a", "tenant/a/"), ("/tenant/a/", "tenant/a/")]
)
def test_store_prefixes_are_normalized(prefix, normalized):
    assert normalize_store_prefix(prefix) == normalized


def test_part_sizes_a_provider_would_refuse_fail_before_any_request(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        S3Store(None, "bucket", part_size=S3_MIN_PART_SIZE - 1)
    with pytest.raises(ValueError, match="multiple of"):
        GCSStore(None, "bucket", part_size=GCS_CHUNK_ALIGNMENT + 1)
    with pytest.raises(ValueError, match="positive"):
        FilesystemStore(tmp_path, part_size=0)
    with pytest.raises(ValueError):
        normalize_store_prefix("tenant/../other")


def test_a_failing_abort_is_logged_and_the_original_error_wins(tmp_path, monkeypatch, caplog):
    def broken_abort(upload):
        raise OSError("abort failed too")

    monkeypatch.setattr(filesystem._AtomicFileUpload, "abort", broken_abort)
    store = FilesystemStore(tmp_path, part_size=4)
    chunks = failing_after(iter([b"12345678", b"9"]), 5, ProducerFailed("broke after one part"))

    with caplog.at_level(logging.WARNING), pytest.raises(ProducerFailed):
        store.put("partial", chunks)

    assert f"could not abort the partial upload of {store.location('partial')}" in caplog.text


@pytest.mark.parametrize(
    ("chunk_sizes", "part_size", "expected"),
    [
        ([], 4, [(0, True)]),
        ([3], 4, [(3, True)]),
        ([4], 4, [(4, True)]),  # exactly one part: still a single PUT
        ([4, 1], 4, [(4, False), (1, True)]),
        ([10], 4, [(4, False), (4, False), (2, True)]),
        ([1] * 8, 4, [(4, False), (4, True)]),
    ],
)
def test_iter_parts_regroups_and_marks_the_last_part(chunk_sizes, part_size, expected):
    data = bytes(range(sum(chunk_sizes)))
    chunks, offset = [], 0
    for size in chunk_sizes:
        chunks.append(data[offset : offset + size])
        offset += size

    parts = list(iter_parts(chunks, part_size))

    assert [(len(part), is_last) for part, is_last in parts] == expected
    assert b"".join(part for part, _ in parts) == data
