"""Deterministic test payloads streamed in odd-sized chunks (so chunk, part and range boundaries
never line up).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

MiB = 1024 * 1024
ODD_CHUNK_SIZE = 999_983  # a prime just under 1 MiB


def payload_chunks(size: int, *, seed: int = 0, chunk_size: int = ODD_CHUNK_SIZE) -> Iterator[bytes]:
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        length = min(chunk_size, size - sent)
        yield rng.randbytes(length)
        sent += length


def payload(size: int, *, seed: int = 0) -> bytes:
    return b"".join(payload_chunks(size, seed=seed))


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def failing_after(chunks: Iterator[bytes], limit: int, error: Exception) -> Iterator[bytes]:
    """Pass `chunks` through, then raise `error` once more than `limit` bytes were produced."""
    produced = 0
    for chunk in chunks:
        yield chunk
        produced += len(chunk)
        if produced > limit:
            raise error
