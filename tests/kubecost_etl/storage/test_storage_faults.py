"""Storage 500s through a real fault-injecting proxy: retried when transient, clean failure when not."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient, LinearRetry
from kubecost_etl.storage.azure import AzureStore
from kubecost_etl.storage.base import StorageError
from kubecost_etl.storage.s3 import S3Store

from tests.servers import AZURE_INTERNAL_ERROR, MOTO_SECRET_KEY, S3_INTERNAL_ERROR, FaultProxy

from ..stores_under_test import TEST_PART_SIZE
from .payloads import MiB, payload, payload_chunks

S3_MAX_ATTEMPTS = 3
S3_PART_UPLOAD = r"[?&]partNumber=2(&|$)"
S3_SINGLE_PUT = r"^/[^?]+/small\.bin$"  # a PUT of the object itself, no query
S3_GET = r"^/[^?]+/read-me\.bin$"
AZURE_BLOCK_UPLOAD = r"[?&]comp=block(&|$)"  # stage_block, not the block-list commit


@pytest.fixture
def s3_through_proxy(moto_s3_server, unique_bucket_name):
    direct = moto_s3_server.client()
    direct.create_bucket(Bucket=unique_bucket_name)
    with FaultProxy(moto_s3_server.url) as proxy:
        client = moto_s3_server.client(endpoint_url=proxy.url, max_attempts=S3_MAX_ATTEMPTS)
        yield proxy, S3Store(client, unique_bucket_name, part_size=TEST_PART_SIZE), direct


@pytest.fixture
def azure_through_proxy(azurite_server, unique_bucket_name):
    direct = BlobServiceClient.from_connection_string(azurite_server.connection_string())
    direct_container = direct.create_container(unique_bucket_name)
    with FaultProxy(azurite_server.url) as proxy:
        # A short fixed backoff: the SDK's default waits 15 s before its first retry.
        service = BlobServiceClient.from_connection_string(
            azurite_server.connection_string(proxy.url),
            retry_policy=LinearRetry(backoff=0.1, random_jitter_range=0, retry_total=3),
        )
        store = AzureStore(service.get_container_client(unique_bucket_name), part_size=TEST_PART_SIZE)
        yield proxy, store, direct_container


def s3_visible_keys(direct, bucket) -> list[str]:
    return [item["Key"] for item in direct.list_objects_v2(Bucket=bucket).get("Contents", [])]


def s3_pending_uploads(direct, bucket) -> list[dict]:
    return direct.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.mark.parametrize(
    ("pattern", "key", "size"),
    [(S3_PART_UPLOAD, "big.bin", 3 * TEST_PART_SIZE - 7), (S3_SINGLE_PUT, "small.bin", 1000)],
    ids=["part-upload", "single-put"],
)
def test_s3_transient_500_is_retried_and_object_is_exact(s3_through_proxy, pattern, key, size):
    proxy, store, direct = s3_through_proxy
    proxy.fail_next("PUT", pattern, times=S3_MAX_ATTEMPTS - 1, error=S3_INTERNAL_ERROR)

    info = store.put(key, payload_chunks(size, seed=3))

    assert len(proxy.injected("PUT")) == S3_MAX_ATTEMPTS - 1
    assert info.size == size
    assert direct.get_object(Bucket=store.bucket, Key=key)["Body"].read() == payload(size, seed=3)
    assert s3_pending_uploads(direct, store.bucket) == []


@pytest.mark.parametrize(
    ("pattern", "key", "size"),
    [(S3_PART_UPLOAD, "big.bin", 3 * TEST_PART_SIZE), (S3_SINGLE_PUT, "small.bin", 1000)],
    ids=["part-upload", "single-put"],
)
def test_s3_persistent_500_fails_clearly_and_leaves_nothing(s3_through_proxy, pattern, key, size):
    proxy, store, direct = s3_through_proxy
    proxy.fail_next("PUT", pattern, times=None, error=S3_INTERNAL_ERROR)

    with pytest.raises(StorageError) as raised:
        store.put(key, payload_chunks(size))

    message = str(raised.value)
    assert f"upload failed for s3://{store.bucket}/{key}" in message
    assert "InternalError (HTTP 500)" in message
    assert MOTO_SECRET_KEY not in message
    assert len(proxy.injected("PUT")) == S3_MAX_ATTEMPTS  # retried, then gave up
    assert s3_visible_keys(direct, store.bucket) == []
    assert s3_pending_uploads(direct, store.bucket) == []  # the multipart upload was aborted


def test_s3_transient_500_on_download_is_retried(s3_through_proxy):
    proxy, store, _direct = s3_through_proxy
    store.put_bytes("read-me.bin", b"payload")
    proxy.fail_next("GET", S3_GET, times=1, error=S3_INTERNAL_ERROR)

    assert store.read_bytes("read-me.bin") == b"payload"
    assert len(proxy.injected("GET")) == 1


def test_azure_transient_500_on_block_upload_is_retried(azure_through_proxy):
    proxy, store, direct_container = azure_through_proxy
    size = 3 * TEST_PART_SIZE - 7
    proxy.fail_next("PUT", AZURE_BLOCK_UPLOAD, times=2, error=AZURE_INTERNAL_ERROR)

    info = store.put("big.bin", payload_chunks(size, seed=5))

    assert len(proxy.injected("PUT")) == 2
    assert info.size == size
    assert direct_container.download_blob("big.bin").readall() == payload(size, seed=5)
    assert len(direct_container.get_blob_client("big.bin").get_block_list()[0]) == 3


def test_azure_persistent_500_fails_clearly_and_leaves_nothing(azure_through_proxy):
    proxy, store, direct_container = azure_through_proxy
    proxy.fail_next("PUT", AZURE_BLOCK_UPLOAD, times=None, error=AZURE_INTERNAL_ERROR)

    with pytest.raises(StorageError) as raised:
        store.put("big.bin", payload_chunks(2 * TEST_PART_SIZE + 1))

    assert "upload failed for azure://devstoreaccount1/" in str(raised.value)
    assert "InternalError (HTTP 500)" in str(raised.value)
    assert list(direct_container.list_blobs()) == []


def test_fault_proxy_forwards_untouched_requests(s3_through_proxy):
    proxy, store, _direct = s3_through_proxy
    data = payload(MiB)

    store.put_bytes("plain.bin", data)

    assert store.read_bytes("plain.bin") == data
    assert proxy.injected() == []
    assert {r.method for r in proxy.requests} >= {"PUT", "GET"}
