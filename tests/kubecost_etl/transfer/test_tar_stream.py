"""The restore's tar writer, read back by GNU tar itself and by Python's tarfile."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tracemalloc

import pytest
from kubecost_etl.etl.layout import UnsafePathError
from kubecost_etl.transfer.tar_stream import (
    RECORD,
    ArchiveFile,
    ContentMismatch,
    FrameSink,
    parent_directories,
    write_archive,
)

MTIME = 1_690_848_000


def member(path: str, data: bytes, pieces: int = 3, **overrides) -> ArchiveFile:
    step = max(1, len(data) // pieces)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    fields = {
        "path": path,
        "size": len(data),
        "mtime": MTIME,
        "sha256": hashlib.sha256(data).hexdigest(),
        "content": lambda: iter(chunks),
    }
    fields.update(overrides)
    return ArchiveFile(**fields)


def archive_bytes(files, top="stage", **kw) -> bytes:
    out = bytearray()
    write_archive(FrameSink(out.extend, frame_bytes=4096), top, files, **kw)
    return bytes(out)


FILES = {
    "bingen/allocations/1d/1690761600-1690848000": os.urandom(70_000),
    "bingen/allocations/1h/1690761600-1690765200": b"BGST" + b"\0" * 82,
    "bingen/assets/1d/1690761600-1690848000": b"",
    "cloudcosts/x": os.urandom(513),
}


def test_gnu_tar_extracts_it_and_exits_at_the_end_marker_without_end_of_input(tmp_path):
    data = archive_bytes([member(p, d) for p, d in sorted(FILES.items())], uid=os.getuid(), gid=os.getgid())
    assert len(data) % RECORD == 0
    tar = subprocess.Popen(
        ["tar", "-x", "-f", "-", "-C", str(tmp_path)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    tar.stdin.write(data)
    tar.stdin.flush()  # stdin stays open, as on a v4 exec that cannot signal its end
    try:
        assert tar.wait(timeout=30) == 0, tar.stderr.read()
    finally:
        tar.stdin.close()
    root = tmp_path / "stage"
    extracted = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert extracted == FILES
    for path in FILES:
        info = (root / path).stat()
        assert info.st_mtime == MTIME
        assert info.st_mode & 0o777 == 0o644
    assert (root / "bingen" / "allocations").stat().st_mode & 0o777 == 0o755


def test_members_are_directories_and_regular_files_only_with_fixed_modes_and_owner():
    data = archive_bytes([member(p, d) for p, d in sorted(FILES.items())], uid=1001, gid=1002, dir_mtime=5)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
    assert {m.type for m in members} == {tarfile.DIRTYPE, tarfile.REGTYPE}
    assert [m.name for m in members if m.isdir()] == [
        "stage",
        "stage/bingen",
        "stage/bingen/allocations",
        "stage/bingen/allocations/1d",
        "stage/bingen/allocations/1h",
        "stage/bingen/assets",
        "stage/bingen/assets/1d",
        "stage/cloudcosts",
    ]
    assert all(m.uid == 1001 and m.gid == 1002 for m in members)
    assert all(m.mode == (0o755 if m.isdir() else 0o644) for m in members)
    assert all(m.name.startswith("stage/") or m.name == "stage" for m in members)


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../escape", "bingen/../../x", "bingen//x", "-rf", "a/./b", ""]
)
def test_refused_names_never_reach_the_stream(bad):
    sent = bytearray()
    files = [member("a/ok", b"fine"), member(bad, b"evil")]
    files.sort(key=lambda f: f.path)
    with pytest.raises(UnsafePathError):
        write_archive(FrameSink(sent.extend, frame_bytes=1), "stage", files)
    assert b"evil" not in bytes(sent)
    assert bad.encode() not in bytes(sent) or bad == ""


@pytest.mark.parametrize("top", ["../up", "a/b", "/abs", ".."])
def test_the_top_directory_must_be_one_plain_name(top):
    with pytest.raises(UnsafePathError):
        archive_bytes([member("x", b"1")], top=top)


def test_a_path_both_file_and_directory_or_listed_twice_is_refused():
    with pytest.raises(UnsafePathError):
        archive_bytes([member("a", b"1"), member("a/b", b"2")])
    with pytest.raises(UnsafePathError):
        archive_bytes([member("a", b"1"), member("a", b"1")])
    with pytest.raises(UnsafePathError):
        archive_bytes([member("b", b"1"), member("a", b"1")])


@pytest.mark.parametrize(
    "content, problem",
    [
        (lambda: iter([b"short"]), "announced"),
        (lambda: iter([b"exactly ten", b"and more"]), "longer"),
        (lambda: iter([b"0123456789"]), "sha256"),
    ],
)
def test_content_that_differs_from_its_announcement_is_caught(content, problem):
    announced = member("f", b"abcdefghij", content=content)
    with pytest.raises(ContentMismatch, match=problem):
        archive_bytes([announced])


def test_frames_stay_small_and_memory_bounded_for_a_large_file():
    size = 64 << 20
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    for _ in range(64):
        digest.update(block)
    frames = []

    def send(frame: bytes) -> None:
        frames.append(len(frame))

    big = ArchiveFile("big", size, MTIME, digest.hexdigest(), lambda: (block for _ in range(64)))
    tracemalloc.start()
    try:
        stats = write_archive(FrameSink(send), "stage", [big])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats == {"files": 1, "directories": 1, "bytes": size}
    assert sum(frames) % RECORD == 0 and sum(frames) >= size
    assert max(frames) <= 1 << 20  # no frame larger than one content chunk
    assert peak < 4 << 20, peak


def test_parent_directories_come_parents_first():
    assert parent_directories(["a/b/c", "a/d", "e"]) == ["a", "a/b"]
