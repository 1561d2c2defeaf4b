"""Writing a tar archive into an exec's stdin, member by member, in bounded memory.

We build the archive ourselves instead of shipping a stored one, so every member is chosen here:
names pass the allow-list (``etl_layout.check_relative_path``), members are directories and
regular files only (never links, devices or fifos), modes are fixed (0755/0644), and each file's
bytes are counted and hashed as they pass, so a short, long or different file is caught.
Content is read from an iterator of chunks (e.g. store download -> decompress): nothing is held
beyond one chunk and one outgoing frame, and nothing touches the local disk.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import UnsafePathError, check_relative_path

BLOCK = 512
RECORD = 20 * BLOCK  # the blocking factor GNU tar and busybox expect: the end is padded to it
FILE_MODE = 0o644
DIR_MODE = 0o755
FRAME_BYTES = 256 * 1024  # small writes are gathered into frames of about this size


class ContentMismatch(KubecostEtlError, ValueError):
    """A file's bytes did not match the size or sha256 it was announced with."""


@dataclass(frozen=True)
class ArchiveFile:
    path: str  # relative to the archive's top directory
    size: int
    mtime: int
    sha256: str
    content: Callable[[], Iterable[bytes]]  # opened only when the member is written


class FrameSink:
    """Gathers small writes into frames of about ``frame_bytes`` and hands each to ``send``."""

    def __init__(self, send: Callable[[bytes], None], frame_bytes: int = FRAME_BYTES):
        self._send = send
        self._frame_bytes = frame_bytes
        self._pending = bytearray()
        self.bytes_sent = 0

    def write(self, data: bytes) -> None:
        if len(self._pending) + len(data) < self._frame_bytes:
            self._pending += data
            return
        self.flush()
        if len(data) >= self._frame_bytes:
            self._send(data)
            self.bytes_sent += len(data)
        else:
            self._pending += data

    @property
    def position(self) -> int:
        """Bytes written so far, sent or not."""
        return self.bytes_sent + len(self._pending)

    def flush(self) -> None:
        if self._pending:
            self._send(bytes(self._pending))
            self.bytes_sent += len(self._pending)
            self._pending.clear()


def parent_directories(paths: Iterable[str]) -> list[str]:
    """Every directory the paths need, parents before children (``a/b/c`` needs ``a``, ``a/b``)."""
    needed: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        needed.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return sorted(needed, key=lambda d: (d.count("/"), d))


def write_archive(
    sink: FrameSink,
    top: str,
    files: Iterable[ArchiveFile],
    *,
    uid: int = 0,
    gid: int = 0,
    dir_mtime: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write ``top/`` and ``top/<path>`` for every file, then tar's end marker; return counts.

    ``files`` must be sorted by path. Raises ``UnsafePathError`` for a refused name (before any
    byte of that member is sent) and ``ContentMismatch`` when content differs from what was
    announced; the archive is then unfinished and the caller must abandon the stream.
    """
    check_relative_path(top)
    if "/" in top:
        raise UnsafePathError(f"refusing archive top directory {top!r}: one path component expected")
    written_dirs: set[str] = set()
    written_files: set[str] = set()
    stats = {"files": 0, "directories": 0, "bytes": 0}

    def add_directory(relative: str) -> None:
        name = f"{top}/{relative}" if relative else top
        _write_header(sink, _header(name + "/", tarfile.DIRTYPE, DIR_MODE, 0, dir_mtime, uid, gid))
        written_dirs.add(relative)
        stats["directories"] += 1

    add_directory("")
    previous = ""
    for file in files:
        path = check_relative_path(file.path)
        if path <= previous:
            raise UnsafePathError(
                f"refusing {path!r}: files must come sorted and once each (after {previous!r})"
            )
        previous = path
        if path in written_dirs or any(parent in written_files for parent in parent_directories([path])):
            raise UnsafePathError(f"refusing {path!r}: it is both a file and a directory in this archive")
        for directory in parent_directories([path]):
            if directory not in written_dirs:
                add_directory(directory)
        if file.size < 0:
            raise ContentMismatch(f"{path}: negative size {file.size}")
        _write_header(
            sink, _header(f"{top}/{path}", tarfile.REGTYPE, FILE_MODE, file.size, file.mtime, uid, gid)
        )
        for piece in _verified(path, file.size, file.sha256, file.content()):
            sink.write(piece)
            if on_progress:
                on_progress(len(piece))
        sink.write(b"\0" * (-file.size % BLOCK))
        written_files.add(path)
        stats["files"] += 1
        stats["bytes"] += file.size
    # Two zero blocks end the archive; padding to a whole record lets tar exit without waiting
    # for end of input (a v4 exec cannot close stdin).
    sink.write(b"\0" * (2 * BLOCK))
    sink.write(b"\0" * (-sink.position % RECORD))
    sink.flush()
    return stats


def _header(name: str, kind: bytes, mode: int, size: int, mtime: int, uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.uid, info.gid = kind, mode, size, mtime, uid, gid
    return info


def _write_header(sink: FrameSink, info: tarfile.TarInfo) -> None:
    # GNU format: long names get a GNU long-name record, which GNU tar and busybox both read.
    sink.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict"))


def _verified(path: str, size: int, sha256: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass the chunks through, refusing more or fewer than ``size`` bytes or another sha256."""
    digest = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        if not chunk:
            continue
        seen += len(chunk)
        if seen > size:
            raise ContentMismatch(f"{path}: content is longer than the announced {size} bytes")
        digest.update(chunk)
        yield chunk
    if seen != size:
        raise ContentMismatch(f"{path}: content is {seen} bytes, announced {size}")
    if digest.hexdigest() != sha256:
        raise ContentMismatch(f"{path}: content does not match its sha256")
