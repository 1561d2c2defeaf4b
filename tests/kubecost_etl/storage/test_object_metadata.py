"""User metadata on objects (`put(..., metadata=)`, `ObjectInfo.metadata`) on every backend's real server."""

from __future__ import annotations

from ..stores_under_test import TEST_PART_SIZE
from .payloads import payload_chunks

META = {"kcetlsha256": "ab" * 32, "kcetlmtime": "1690848000"}


def test_metadata_round_trips_through_stat_and_listing(store):
    store.store.put_bytes("etl/a", b"small", metadata=META)
    store.store.put("etl/b", payload_chunks(2 * TEST_PART_SIZE + 5, seed=1), metadata=META)  # multipart path
    store.store.put_bytes("etl/c", b"no metadata")

    assert store.store.stat("etl/a").metadata == META
    assert store.store.stat("etl/b").metadata == META
    assert store.store.stat("etl/c").metadata == {}
    listed = {info.key: info.metadata for info in store.store.list("etl/")}
    assert set(listed) == {"etl/a", "etl/b", "etl/c"}  # no sidecar or other debris listed
    if store.store.lists_metadata:
        assert listed == {"etl/a": META, "etl/b": META, "etl/c": {}}
    else:  # S3: ListObjectsV2 carries none, and the store does not pretend it knows
        assert listed == {"etl/a": None, "etl/b": None, "etl/c": None}


def test_overwrite_replaces_or_drops_metadata(store):
    store.store.put_bytes("k", b"one", metadata=META)
    store.store.put_bytes("k", b"two", metadata={"kcetlsha256": "cd" * 32})
    assert store.store.stat("k").metadata == {"kcetlsha256": "cd" * 32}

    store.store.put_bytes("k", b"three")
    assert store.store.stat("k").metadata == {}


def test_failed_put_keeps_the_old_object_and_its_metadata(store):
    store.store.put_bytes("k", b"old", metadata=META)

    def broken():
        yield b"x" * (TEST_PART_SIZE + 1)
        raise RuntimeError("producer failed")

    try:
        store.store.put("k", broken(), metadata={"kcetlsha256": "ee" * 32})
    except RuntimeError:
        pass
    assert store.store.read_bytes("k") == b"old"
    assert store.store.stat("k").metadata == META


def test_delete_removes_metadata_too(store):
    store.store.put_bytes("k", b"old", metadata=META)
    store.store.delete(["k"])
    assert store.store.stat("k") is None
    store.store.put_bytes("k", b"new")
    assert store.store.stat("k").metadata == {}
