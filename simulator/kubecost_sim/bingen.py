"""Writer for simulated Kubecost "bingen" set files.

The header is the documented one: ASCII ``BGST``, int32 LE string count N, N strings (uint16 LE
length + UTF-8 bytes), one uint8 codec version (allocations 22, assets 21 as in OpenCost).
The body is SIMULATED: a window (two int64 unix seconds), an int32 record count and fixed-size
cost-like records. Each record mixes random cost mantissas with repeated fields (string indices,
the window, constant minutes), so the data compresses about as well as real sets (~3x with zstd)
instead of being incompressible noise.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

MAGIC = b"BGST"
CODEC_VERSIONS = {"allocations": 22, "assets": 21}
EMPTY_SET_BYTES = 86  # the size Kubecost's empty sets have on disk

_STRING_TABLE_SIZE = 256  # record indices are single random bytes, so they always hit the table
_BODY_HEADER = struct.Struct("<qqi")  # window start, window end, record count
# name, namespace, node index; flags; window start, end; cpu, ram, pv cost; minutes; reserved
_RECORD = struct.Struct("<HHHHqqdddd8x")
# Bytes of a record that vary: the low byte of each string index and the low mantissa bytes of
# the costs (six of cpu, five of ram, two of pv). Everything else repeats from record to record.
_RANDOM_OFFSETS = (0, 2, 4, *range(24, 30), *range(32, 37), *range(40, 42))


def encode_header(strings: Sequence[str], version: int) -> bytes:
    parts = [MAGIC, struct.pack("<i", len(strings))]
    for text in strings:
        encoded = text.encode()
        parts.append(struct.pack("<H", len(encoded)) + encoded)
    parts.append(bytes([version]))
    return b"".join(parts)


def encode_empty_set(pipeline: str, start: int, end: int) -> bytes:
    data = encode_header([], CODEC_VERSIONS[pipeline]) + _BODY_HEADER.pack(start, end, 0)
    return data.ljust(EMPTY_SET_BYTES, b"\0")


def encode_set(pipeline: str, start: int, end: int, size: int, rng: random.Random) -> bytes:
    """A set file of exactly ``size`` bytes (at least a header and one record)."""
    header = encode_header(_string_table(pipeline, rng), CODEC_VERSIONS[pipeline])
    record_count = max(1, (size - len(header) - _BODY_HEADER.size) // _RECORD.size)
    template = _RECORD.pack(0, 0, 0, 0, start, end, 0.25, 0.125, 0.0625, (end - start) / 60)
    records = bytearray(template * record_count)
    noise = rng.randbytes(record_count * len(_RANDOM_OFFSETS))
    for position, offset in enumerate(_RANDOM_OFFSETS):
        # One strided copy per varying byte keeps this at C speed for multi-megabyte files.
        records[offset :: _RECORD.size] = noise[position * record_count : (position + 1) * record_count]
    data = header + _BODY_HEADER.pack(start, end, record_count) + records
    return data.ljust(size, b"\0")


def _string_table(pipeline: str, rng: random.Random) -> list[str]:
    kind = "pod" if pipeline == "allocations" else "node"
    return [
        f"cluster-one/namespace-{index % 17}/{kind}-{rng.getrandbits(40):010x}"
        for index in range(_STRING_TABLE_SIZE)
    ]
