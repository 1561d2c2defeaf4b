"""Streaming compression of per-file objects (zstd by default, gzip selectable)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import zstandard

SUFFIX = {"zstd": ".zst", "gzip": ".gz"}


def compress(chunks: Iterable[bytes], kind: str, level: int, threads: int = 0) -> Iterator[bytes]:
    """``threads`` > 0: zstd compresses in that many worker threads of its own (for large files; the
    output is an ordinary zstd frame, read back the same way)."""
    if kind == "zstd":
        compressor = zstandard.ZstdCompressor(level=level, threads=threads).compressobj()
    elif kind == "gzip":
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    else:
        raise ValueError(f"unknown compression {kind!r}")
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    tail = compressor.flush()
    if tail:
        yield tail


def decompress(chunks: Iterable[bytes], kind: str) -> Iterator[bytes]:
    if kind == "zstd":
        decompressor = zstandard.ZstdDecompressor().decompressobj()
    elif kind == "gzip":
        decompressor = zlib.decompressobj(31)
    else:
        raise ValueError(f"unknown compression {kind!r}")
    for chunk in chunks:
        out = decompressor.decompress(chunk)
        if out:
            yield out
    if kind == "gzip":
        if not decompressor.eof:
            raise ValueError("gzip stream is truncated")
        tail = decompressor.flush()
        if tail:
            yield tail
    elif not decompressor.eof:
        raise ValueError("zstd stream is truncated")
