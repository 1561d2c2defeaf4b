"""Stores under test, each paired with independent raw-SDK views of the same bucket.

The `store` fixture (tests/kubecost_etl/conftest.py) gives one fresh, empty store per test,
parametrized over s3, gcs, azure and filesystem.

Each comes as a `StoreUnderTest` carrying, besides the store, independent raw-SDK views of the
same bucket so tests never verify a store with itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubecost_etl.storage.base import ObjectStore

STORE_KINDS = ["s3", "gcs", "azure", "filesystem"]
STORE_PREFIX = "backups/cluster-a"  # every store runs under a prefix, so prefix mapping is always exercised
TEST_PART_SIZE = 5 * 1024 * 1024  # S3's minimum, a multiple of GCS' 256 KiB
TEST_LIST_PAGE_SIZE = 7  # small pages make every listing test a pagination test


@dataclass
class StoreUnderTest:
    kind: str
    store: ObjectStore
    read_raw: Callable[[str], bytes]  # a key's bytes, read with the raw SDK
    raw_names: Callable[[], list[str]]  # every object name in the bucket (prefix included), raw SDK
    # Unfinished multipart uploads. Only S3 keeps listable ones; GCS sessions cannot be listed and
    # Azure's uncommitted blocks are left to expire by design, so the others report none.
    pending_uploads: Callable[[], list[str]] = field(default=lambda: [])


def _full_name(key: str) -> str:
    return f"{STORE_PREFIX}/{key}"


def make_s3(server, bucket: str) -> StoreUnderTest:
    from kubecost_etl.storage.s3 import S3Store

    client = server.client()
    client.create_bucket(Bucket=bucket)
    store = S3Store(
        client, bucket, STORE_PREFIX, part_size=TEST_PART_SIZE, list_page_size=TEST_LIST_PAGE_SIZE
    )

    def raw_names() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    return StoreUnderTest(
        "s3",
        store,
        read_raw=lambda key: client.get_object(Bucket=bucket, Key=_full_name(key))["Body"].read(),
        raw_names=raw_names,
        pending_uploads=lambda: [
            u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        ],
    )


def make_gcs(server, bucket: str) -> StoreUnderTest:
    from kubecost_etl.storage.gcs import GCSStore

    client = server.client()
    client.create_bucket(bucket)
    store = GCSStore(
        client, bucket, STORE_PREFIX, part_size=TEST_PART_SIZE, list_page_size=TEST_LIST_PAGE_SIZE
    )
    return StoreUnderTest(
        "gcs",
        store,
        read_raw=lambda key: client.bucket(bucket).blob(_full_name(key)).download_as_bytes(),
        raw_names=lambda: [blob.name for blob in client.list_blobs(bucket)],
    )


def make_azure(server, container_name: str) -> StoreUnderTest:
    from azure.storage.blob import BlobServiceClient
    from kubecost_etl.storage.azure import AzureStore

    container = BlobServiceClient.from_connection_string(server.connection_string()).create_container(
        container_name
    )
    store = AzureStore(container, STORE_PREFIX, part_size=TEST_PART_SIZE, list_page_size=TEST_LIST_PAGE_SIZE)
    return StoreUnderTest(
        "azure",
        store,
        read_raw=lambda key: container.download_blob(_full_name(key)).readall(),
        raw_names=lambda: [blob.name for blob in container.list_blobs()],
    )


def make_filesystem(root: Path) -> StoreUnderTest:
    from kubecost_etl.storage.filesystem import FilesystemStore

    store = FilesystemStore(root, STORE_PREFIX, part_size=TEST_PART_SIZE)
    return StoreUnderTest(
        "filesystem",
        store,
        read_raw=lambda key: (root / _full_name(key)).read_bytes(),
        # Every file, temporary ones included: a leftover partial file counts as visible debris.
        raw_names=lambda: sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()),
    )
