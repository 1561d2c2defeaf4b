"""Reading a federated mirror for a restore (``restore/mirror.py``) on real stores: the listing pinned,
every object re-hashed against its metadata sha256, headers checked, objects written by Kubecost itself
(no metadata) hashed as read, and every mismatch refused naming the cluster and the key."""

from __future__ import annotations

import hashlib
import random

import pytest
from kubecost_etl.config import ObjectStoreRef
from kubecost_etl.federation.remote import metadata_for
from kubecost_etl.federation.settings import FederatedSettings, Layout
from kubecost_etl.restore import mirror
from kubecost_etl.storage.filesystem import FilesystemStore
from kubecost_etl.storage.s3 import S3Store
from kubecost_sim.bingen import encode_set

CLUSTER = "cluster-a"
FEDERATED_ID = "kc-a"


def settings(layout: Layout = Layout.FEDERATED) -> FederatedSettings:
    return FederatedSettings(ObjectStoreRef(inline={}), cluster_id=FEDERATED_ID, layout=layout, retention={})


def set_file(start: int, size: int = 3000, seed: int = 1) -> bytes:
    return encode_set("allocations", start, start + 86400, size, random.Random(seed))


FILES = {
    "bingen/allocations/1d/1700000000-1700086400": set_file(1700000000, seed=1),
    "bingen/allocations/1d/1700086400-1700172800": set_file(1700086400, seed=2),
    "bingen/assets/1h/1700000000-1700003600": set_file(1700000000, 900, seed=3),
}


def put(
    store, layout: Layout, files: dict[str, bytes], with_metadata: bool = True, mtime: int = 1_700_200_000
):
    root = f"federated/{FEDERATED_ID}/" if layout is Layout.FEDERATED else ""
    for path, data in files.items():
        meta = metadata_for(hashlib.sha256(data).hexdigest(), mtime) if with_metadata else None
        store.put(f"{root}etl/{path}", [data], metadata=meta)


@pytest.fixture
def fs(tmp_path):
    return FilesystemStore(tmp_path / "bucket", "tenant")


@pytest.fixture
def s3(moto_s3_server, unique_bucket_name):
    moto_s3_server.client().create_bucket(Bucket=unique_bucket_name)
    return S3Store(moto_s3_server.client(), unique_bucket_name, "kc")


def verified(store, layout: Layout = Layout.FEDERATED):
    listing = mirror.list_mirror(store, settings(layout), layout.value, CLUSTER)
    return mirror.verify_mirror(store, settings(layout), layout.value, CLUSTER, listing.digest)


def test_a_pushed_mirror_verifies_against_its_metadata_and_reads_back_exactly(fs):
    put(fs, Layout.FEDERATED, FILES)

    listing, report = verified(fs)

    assert [f.path for f in listing.files] == sorted(FILES)
    assert report["verified_by_metadata"] == 3 and report["unverifiable_against_metadata"] == 0
    entries = {e.path: e for e in listing.entries()}
    assert {p: e.sha256 for p, e in entries.items()} == {
        p: hashlib.sha256(d).hexdigest() for p, d in FILES.items()
    }
    assert all(e.mtime == 1_700_200_000 and e.size == len(FILES[e.path]) for e in entries.values())
    again = mirror.MirrorListing.from_dict(listing.as_dict())
    assert again == listing and again.digest == listing.digest
    for f in listing.files:
        assert b"".join(mirror.content(fs, f, CLUSTER)()) == FILES[f.path]


def test_objects_kubecost_wrote_without_metadata_are_hashed_as_read_and_reported(s3):
    # S3 lists no metadata and there is no index of ours: each object costs a HEAD, then one read.
    put(s3, Layout.DURABLE, FILES, with_metadata=False)

    listing, report = verified(s3, Layout.DURABLE)

    assert report["unverifiable_against_metadata"] == 3 and report["verified_by_metadata"] == 0
    assert sorted(report["unverifiable_keys"]) == sorted(f"etl/{p}" for p in FILES)
    assert {f.path: f.sha256 for f in listing.files} == {
        p: hashlib.sha256(d).hexdigest() for p, d in FILES.items()
    }
    assert all(f.verified_by == mirror.VERIFIED_BY_READ and f.mtime > 0 for f in listing.files)


def test_bytes_that_differ_from_the_metadata_sha256_are_refused_naming_cluster_and_key(fs):
    put(fs, Layout.FEDERATED, FILES)
    victim = sorted(FILES)[1]
    data = bytearray(FILES[victim])
    data[-1] ^= 0xFF
    key = f"federated/{FEDERATED_ID}/etl/{victim}"
    fs.put(
        key, [bytes(data)], metadata=metadata_for(hashlib.sha256(FILES[victim]).hexdigest(), 1_700_200_000)
    )

    with pytest.raises(mirror.MirrorRefused, match=rf"cluster '{CLUSTER}'.*{key}: content sha256 .* differs"):
        verified(fs)


def test_a_broken_bingen_header_is_refused_even_when_the_metadata_matches(fs):
    broken = b"XXXX" + FILES[sorted(FILES)[0]][4:]
    put(fs, Layout.FEDERATED, {**FILES, sorted(FILES)[0]: broken})

    with pytest.raises(mirror.MirrorRefused, match="bingen header check failed: missing BGST magic"):
        verified(fs)


def test_a_listing_that_changed_since_it_was_pinned_is_refused(fs):
    put(fs, Layout.FEDERATED, FILES)
    pinned = mirror.list_mirror(fs, settings(), "federated", CLUSTER)
    put(fs, Layout.FEDERATED, {"bingen/assets/1h/1700003600-1700007200": set_file(1700003600, 900, seed=4)})

    with pytest.raises(mirror.MirrorRefused, match="changed since this restore listed it"):
        mirror.verify_mirror(fs, settings(), "federated", CLUSTER, pinned.digest)


def test_an_empty_layout_is_refused_naming_the_layout_the_config_writes(fs):
    put(fs, Layout.FEDERATED, FILES)

    with pytest.raises(mirror.MirrorRefused) as refused:
        mirror.list_mirror(fs, settings(Layout.FEDERATED), "durable", CLUSTER)

    text = str(refused.value)
    assert f"cluster '{CLUSTER}'" in text and "the durable layout holds no files" in text
    assert "federated.layout is federated" in text and "use source federated" in text


def test_unsafe_or_clashing_keys_are_refused(s3, moto_s3_server):
    # Only an object store can hold these (a key that is also a "directory"; a ".." part, which our own
    # store refuses to write, so another client writes it).
    put(s3, Layout.FEDERATED, {**FILES, "bingen/allocations/1d": b"a file where a directory must be"})
    raw_key = f"kc/federated/{FEDERATED_ID}/etl/bingen/../../x"
    moto_s3_server.client().put_object(Bucket=s3.bucket, Key=raw_key, Body=b"outside the ETL dir")

    with pytest.raises(mirror.MirrorRefused) as refused:
        mirror.list_mirror(s3, settings(), "federated", CLUSTER)
    assert f"cluster '{CLUSTER}'" in str(refused.value) and "bingen/../../x" in str(refused.value)

    moto_s3_server.client().delete_object(Bucket=s3.bucket, Key=raw_key)
    with pytest.raises(mirror.MirrorRefused, match="'bingen/allocations/1d' is also an object"):
        mirror.list_mirror(s3, settings(), "federated", CLUSTER)


def test_an_object_replaced_after_verification_is_refused_while_it_streams(fs):
    put(fs, Layout.FEDERATED, FILES)
    listing, _ = verified(fs)
    f = listing.files[0]
    fs.put(f.key, [FILES[f.path][:-1] + b"!"], metadata=metadata_for(f.sha256, f.mtime))

    with pytest.raises(mirror.MirrorRefused, match=f"mirror object {f.key} changed since it was verified"):
        b"".join(mirror.content(fs, f, CLUSTER)())


def test_a_listing_handed_over_with_another_digest_is_refused(fs):
    put(fs, Layout.FEDERATED, FILES)
    listing, _ = verified(fs)
    data = listing.as_dict()
    data["files"][0]["size"] += 1

    with pytest.raises(mirror.MirrorRefused, match="does not match its own digest"):
        mirror.MirrorListing.from_dict(data)
