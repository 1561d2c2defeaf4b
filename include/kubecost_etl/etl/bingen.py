"""A cheap validity check for Kubecost "bingen" set files.

Layout: ASCII ``BGST``, int32 LE string count N, N strings (uint16 LE length + bytes), one uint8
codec version, then the body. Nothing in the file states its length or a checksum, so this only
proves the header is intact; full decoding needs ``/go/bin/app bingentojson`` in the pod.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"BGST"
# OpenCost uses 21/22 (assets/allocations) and 3 (cloud costs); Kubecost's own numbers are
# unconfirmed, so accept a generous range rather than hard-wire them.
PLAUSIBLE_VERSIONS = range(1, 65)
MAX_STRING_TABLE = 1 << 20
HEADER_PROBE_BYTES = 64 * 1024  # enough of a file's start to check any realistic header


@dataclass(frozen=True)
class HeaderCheck:
    ok: bool
    reason: str = ""
    version: int | None = None
    header_bytes: int = 0


def check_header(data: bytes, total_size: int | None = None) -> HeaderCheck:
    """Check a set file's header from its first bytes (``data``); ``total_size`` is the file size."""
    size = len(data) if total_size is None else total_size
    if len(data) < 4 or data[:4] != MAGIC:
        return HeaderCheck(False, f"missing BGST magic (starts with {data[:4]!r})")
    if len(data) < 8:
        return HeaderCheck(False, "file ends inside the header (no string count)")
    (count,) = struct.unpack_from("<i", data, 4)
    if count < 0 or count > MAX_STRING_TABLE:
        return HeaderCheck(False, f"implausible string count {count}")
    offset = 8
    for index in range(count):
        if offset + 2 > len(data):
            return _truncated(data, size, f"string {index} length")
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2 + length
        if offset > len(data):
            return _truncated(data, size, f"string {index}")
    if offset >= len(data):
        return _truncated(data, size, "codec version")
    version = data[offset]
    if version not in PLAUSIBLE_VERSIONS:
        return HeaderCheck(False, f"implausible codec version {version}", version, offset + 1)
    return HeaderCheck(True, "", version, offset + 1)


def _truncated(data: bytes, size: int, what: str) -> HeaderCheck:
    if len(data) >= size:
        return HeaderCheck(False, f"file ends inside the header ({what})")
    return HeaderCheck(False, f"header longer than the {len(data)} bytes probed ({what})")
