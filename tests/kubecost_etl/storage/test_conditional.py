"""Conditional writes and stale-upload clean-up, on real servers.

Which server enforces which precondition (checked against the versions in the venv):
- moto's S3 server: If-None-Match on PutObject, If-Match on PutObject and DeleteObject: enforced.
- Azurite: If-None-Match (overwrite=False) and If-Match on upload and delete: enforced.
- filesystem: our own link(2) / flock(2) code: enforced.
- gcp-storage-emulator: ignores ifGenerationMatch on every call (a second create "succeeds").
  The refusal cases therefore run on the three enforcing stores only; for GCS the tests check, through
  a recording proxy, that every conditional request really carries ifGenerationMatch with the
  right generation, and the lease reads its object back after each write (tests/kubecost_etl/test_lease.py).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from kubecost_etl.storage.base import PreconditionFailed
from kubecost_etl.storage.filesystem import LOCK_SUFFIX
from kubecost_etl.storage.gcs import GCSStore

from tests.servers import FaultProxy

from ..stores_under_test import STORE_PREFIX, TEST_PART_SIZE, make_azure, make_filesystem, make_s3
from .payloads import payload_chunks

ENFORCING = ["s3", "azure", "filesystem"]


@pytest.fixture(params=ENFORCING)
def enforcing(request, unique_bucket_name, tmp_path):
    if request.param == "s3":
        return make_s3(request.getfixturevalue("moto_s3_server"), unique_bucket_name)
    if request.param == "azure":
        return make_azure(request.getfixturevalue("azurite_server"), unique_bucket_name)
    return make_filesystem(tmp_path / "store-root")


# --- what every store does (GCS included) -------------------------------------------------


def test_read_versioned_of_a_missing_key_is_none(store):
    assert store.store.read_versioned("leases/a.json") is None


def test_create_read_replace_delete_round_trip(store):
    s = store.store
    v1 = s.create_if_absent("leases/a.json", b"one", content_type="application/json")

    first = s.read_versioned("leases/a.json")
    assert (first.data, first.version) == (b"one", v1)
    assert store.read_raw("leases/a.json") == b"one"

    v2 = s.replace_if_unchanged("leases/a.json", b"two", v1)
    assert v2 != v1
    assert s.read_versioned("leases/a.json").version == v2
    assert store.read_raw("leases/a.json") == b"two"

    assert s.delete_if_unchanged("leases/a.json", v2) is True
    assert s.read_versioned("leases/a.json") is None
    assert s.delete_if_unchanged("leases/a.json", v2) is False  # already gone: told, not an error
    assert list(s.list()) == []
    # The filesystem keeps its (empty) lock file next to the key: never listed, nothing else left.
    assert [n for n in store.raw_names() if not n.endswith(LOCK_SUFFIX)] == []


# --- refusals, on the stores that enforce them ----------------------------------------------


def test_create_refused_when_the_object_exists(enforcing):
    s = enforcing.store
    s.create_if_absent("leases/a.json", b"first")

    with pytest.raises(PreconditionFailed, match="leases/a.json"):
        s.create_if_absent("leases/a.json", b"second")
    assert enforcing.read_raw("leases/a.json") == b"first"


def test_replace_refused_when_changed_or_gone(enforcing):
    s = enforcing.store
    v1 = s.create_if_absent("leases/a.json", b"first")
    v2 = s.replace_if_unchanged("leases/a.json", b"second", v1)

    with pytest.raises(PreconditionFailed):
        s.replace_if_unchanged("leases/a.json", b"stale writer", v1)
    assert enforcing.read_raw("leases/a.json") == b"second"

    assert s.delete_if_unchanged("leases/a.json", v2)
    with pytest.raises(PreconditionFailed):
        s.replace_if_unchanged("leases/a.json", b"resurrected", v2)
    assert s.read_versioned("leases/a.json") is None


def test_delete_refused_when_changed(enforcing):
    s = enforcing.store
    v1 = s.create_if_absent("leases/a.json", b"first")
    s.replace_if_unchanged("leases/a.json", b"second", v1)

    with pytest.raises(PreconditionFailed):
        s.delete_if_unchanged("leases/a.json", v1)
    assert enforcing.read_raw("leases/a.json") == b"second"


# --- GCS: the emulator ignores preconditions, so check what is sent -------------------------


@pytest.fixture
def gcs_recorded(gcs_emulator_server, unique_bucket_name):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs_emulator_server.client().create_bucket(unique_bucket_name)
    with FaultProxy(gcs_emulator_server.url) as proxy:
        client = storage.Client(
            project="test-project",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": proxy.url},
        )
        yield proxy, GCSStore(client, unique_bucket_name, STORE_PREFIX, part_size=TEST_PART_SIZE)


def test_gcs_conditional_requests_carry_the_generation(gcs_recorded):
    proxy, s = gcs_recorded
    v1 = s.create_if_absent("leases/a.json", b"one")
    v2 = s.replace_if_unchanged("leases/a.json", b"two", v1)
    s.delete_if_unchanged("leases/a.json", v2)

    # The proxy records a request just after answering it: wait (bounded) for the last record.
    deadline = time.monotonic() + 10
    while not any(r.method == "DELETE" for r in proxy.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    uploads = [r.path for r in proxy.requests if r.method == "POST" and "/upload/" in r.path]
    deletes = [r.path for r in proxy.requests if r.method == "DELETE"]
    assert "ifGenerationMatch=0" in uploads[0]
    assert f"ifGenerationMatch={v1}" in uploads[1]
    assert f"ifGenerationMatch={v2}" in deletes[0]


# --- stale uploads ------------------------------------------------------------------------


def test_s3_stale_multipart_uploads_under_the_prefix_are_aborted(moto_s3_server, unique_bucket_name):
    sut = make_s3(moto_s3_server, unique_bucket_name)
    client, bucket = sut.store.client, unique_bucket_name
    mine = client.create_multipart_upload(Bucket=bucket, Key=f"{STORE_PREFIX}/repo/objects/x.zst")["UploadId"]
    other = client.create_multipart_upload(Bucket=bucket, Key=f"{STORE_PREFIX}/elsewhere/y.zst")["UploadId"]

    pending = list(sut.store.list_pending_uploads("repo/"))
    assert [(p.key, p.upload_id) for p in pending] == [("repo/objects/x.zst", mine)]
    # moto reports one fixed Initiated time for every upload; "now" is set relative to it.
    initiated = pending[0].initiated
    assert (
        sut.store.abort_stale_uploads("repo/", timedelta(hours=1), now=initiated + timedelta(minutes=5)) == []
    )
    assert {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]} == {mine, other}

    aborted = sut.store.abort_stale_uploads("repo/", timedelta(hours=1), now=initiated + timedelta(hours=2))
    assert [a.upload_id for a in aborted] == [mine]
    assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [other]
    sut.store.abort_pending_upload(aborted[0])  # aborting twice is fine


def test_filesystem_partial_files_of_killed_writers_are_removed(tmp_path):
    sut = make_filesystem(tmp_path / "root")
    s = sut.store
    s.put_bytes("repo/objects/done.zst", b"complete")
    upload = s._begin_upload(s._name("repo/objects/killed.zst"), None)  # a writer killed mid-upload
    upload.add(b"half of it")
    other = s._begin_upload(s._name("elsewhere/killed.zst"), None)
    other.add(b"not ours")

    pending = list(s.list_pending_uploads("repo/"))
    assert [p.key for p in pending] == ["repo/objects/killed.zst"]
    started = pending[0].initiated
    assert s.abort_stale_uploads("repo/", timedelta(minutes=10), now=started + timedelta(minutes=1)) == []
    assert upload.temp_path.exists()

    aborted = s.abort_stale_uploads("repo/", timedelta(minutes=10), now=started + timedelta(minutes=11))
    assert [a.key for a in aborted] == ["repo/objects/killed.zst"]
    assert not upload.temp_path.exists()
    assert other.temp_path.exists()
    assert s.read_bytes("repo/objects/done.zst") == b"complete"


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_gcs_and_azure_have_nothing_to_list(request, kind, unique_bucket_name):
    from ..stores_under_test import make_gcs

    sut = (
        make_gcs(request.getfixturevalue("gcs_emulator_server"), unique_bucket_name)
        if kind == "gcs"
        else make_azure(request.getfixturevalue("azurite_server"), unique_bucket_name)
    )
    # An upload cut after its first part: nothing visible, nothing listable, and expiry is the store's job.
    with pytest.raises(RuntimeError):
        sut.store.put("repo/big.bin", _fail_after_first_part())
    assert list(sut.store.list_pending_uploads("repo/")) == []
    assert sut.raw_names() == []
    assert sut.store.abort_stale_uploads("repo/", timedelta(0), now=datetime.now(UTC)) == []


def _fail_after_first_part():
    yield from payload_chunks(TEST_PART_SIZE + 1, seed=1)
    raise RuntimeError("killed")
