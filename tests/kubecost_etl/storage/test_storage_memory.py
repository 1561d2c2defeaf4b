"""Streaming uploads keep memory at about one part, whatever the object size."""

from __future__ import annotations

import tracemalloc

from kubecost_etl.storage._shared import DEFAULT_PART_SIZE
from kubecost_etl.storage.s3 import S3Store

from .payloads import MiB

UPLOAD_SIZE = 200 * MiB


def constant_chunks(size: int):
    # One shared block: the producer itself holds 1 MiB, so the store's memory is what shows.
    block = b"\x5a" * MiB
    for _ in range(size // MiB):
        yield block


def test_200mib_s3_upload_peaks_at_a_few_parts(moto_s3_server, unique_bucket_name):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=unique_bucket_name)
    store = S3Store(client, unique_bucket_name)  # default part size: what production uses

    tracemalloc.start()
    try:
        info = store.put("snapshot.tar.zst", constant_chunks(UPLOAD_SIZE))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.size == UPLOAD_SIZE
    # Measured about 2.3 parts (the part buffer, the part sent, the SDK's request copy).
    assert peak < 4 * DEFAULT_PART_SIZE, f"peak {peak / MiB:.1f} MiB for a {UPLOAD_SIZE // MiB} MiB upload"
    assert (
        client.head_object(Bucket=unique_bucket_name, Key="snapshot.tar.zst")["ContentLength"] == UPLOAD_SIZE
    )
