"""The ETL tree generator: layout, alignment, mtimes, bingen headers, determinism, compressibility."""

import struct
from datetime import UTC, datetime

import zstandard
from kubecost_sim import bingen
from kubecost_sim.etlgen import generate

NOW = datetime(2023, 1, 10, 10, 30, tzinfo=UTC).timestamp()
SECONDS = {"1d": 86400, "1h": 3600}


def read_header(data: bytes) -> tuple[list[str], int, int]:
    """Parse a set file's header independently: (strings, codec version, header length)."""
    assert data[:4] == b"BGST"
    (count,) = struct.unpack_from("<i", data, 4)
    offset, strings = 8, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        assert offset + 2 + length <= len(data)
        strings.append(data[offset + 2 : offset + 2 + length].decode())
        offset += 2 + length
    assert offset < len(data)
    return strings, data[offset], offset + 1


def test_layout_alignment_and_mtimes(tmp_path):
    paths = generate(tmp_path, days=5, hourly_hours=6, file_bytes=20_000, seed=3, now=NOW)
    assert len(paths) == 2 * (5 + 6)
    for pipeline in ("allocations", "assets"):
        for resolution, count in (("1d", 5), ("1h", 6)):
            folder = tmp_path / "bingen" / pipeline / resolution
            windows = sorted(tuple(map(int, path.name.split("-"))) for path in folder.iterdir())
            assert len(windows) == count
            step = SECONDS[resolution]
            assert all(end - start == step and start % step == 0 for start, end in windows)
            assert all(b[0] == a[1] for a, b in zip(windows, windows[1:], strict=False))  # consecutive
            assert windows[-1][0] <= NOW < windows[-1][1]  # ends with the current period
            for start, end in windows:
                mtime = (folder / f"{start}-{end}").stat().st_mtime
                assert mtime == min(end, NOW)


def test_headers_parse_with_the_right_codec_versions(tmp_path):
    paths = generate(tmp_path, days=40, hourly_hours=10, file_bytes=20_000, seed=3, now=NOW)
    sizes = []
    for path in paths:
        data = path.read_bytes()
        strings, version, header_length = read_header(data)
        assert version == {"allocations": 22, "assets": 21}[path.parts[-3]]
        assert header_length < len(data)
        sizes.append(len(data))
        if len(data) > bingen.EMPTY_SET_BYTES:
            assert strings and 16_000 <= len(data) <= 24_000
    assert any(size == bingen.EMPTY_SET_BYTES for size in sizes)  # some periods are empty sets


def test_same_seed_same_tree_other_seed_other_content(tmp_path):
    def tree(folder, seed):
        generate(folder, days=3, hourly_hours=3, file_bytes=5_000, seed=seed, now=NOW)
        return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}

    first, again, other = tree(tmp_path / "a", 7), tree(tmp_path / "b", 7), tree(tmp_path / "c", 8)
    assert first == again
    assert first.keys() == other.keys() and first != other


def test_content_compresses_like_real_sets(tmp_path):
    paths = generate(tmp_path, days=2, hourly_hours=0, file_bytes=2_000_000, seed=1, now=NOW)
    data = max((path.read_bytes() for path in paths), key=len)
    ratio = len(data) / len(zstandard.ZstdCompressor(level=3).compress(data))
    assert 2.5 <= ratio <= 3.5
