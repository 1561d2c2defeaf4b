import io
import os
import tarfile

import pytest
from kubecost_etl.transfer.archive import ChunkReader
from kubecost_etl.transfer.compression import compress, decompress


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_round_trip_and_truncation(kind):
    data = os.urandom(1000) * 3000
    packed = b"".join(compress((data[i : i + 65536] for i in range(0, len(data), 65536)), kind, 3))
    assert len(packed) < len(data) / 10
    assert b"".join(decompress([packed[i : i + 4096] for i in range(0, len(packed), 4096)], kind)) == data
    with pytest.raises(Exception, match="truncated|incomplete|end"):
        b"".join(decompress([packed[: len(packed) // 2]], kind))


def test_chunk_reader_feeds_tarfile_and_drains():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, size in [("bingen/a", 5000), ("bingen/b", 0)]:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
    raw = buffer.getvalue()
    reader = ChunkReader(iter([raw[i : i + 777] for i in range(0, len(raw), 777)]))
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        names = [(m.name, len(tar.extractfile(m).read())) for m in tar]
    reader.drain()
    assert names == [("bingen/a", 5000), ("bingen/b", 0)]
    assert reader.bytes_read == len(raw)


def test_exec_commands_are_batched_by_url_bytes_and_count():
    from urllib.parse import urlencode

    from kubecost_etl.kube.exec import ExecError, command_batches

    base = ["tar", "cf", "-", "-C", "/proc/1/root/var/configs/db/etl"]
    paths = [
        f"bingen/allocations/1h/{1_700_000_000 + i * 3600}-{1_700_003_600 + i * 3600}" for i in range(500)
    ]
    batches = list(command_batches(base, paths, max_url_bytes=8000))
    assert [p for b in batches for p in b] == paths  # nothing lost, order kept
    for batch in batches:
        assert len(urlencode([("command", a) for a in base + batch])) <= 8000
    assert len(batches) == 4  # 500 paths of ~61 URL bytes each
    assert [len(b) for b in command_batches(base, paths[:10], max_count=4)] == [4, 4, 2]
    with pytest.raises(ExecError, match="too long"):
        list(command_batches(base, ["x" * 9000], max_url_bytes=8000))
