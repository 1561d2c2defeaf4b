"""Writing a share bundle: one gzip tarball in the layout Kubecost's ``upload-etl.sh`` unpacks, streamed
straight into a (multipart) upload, then its manifest, the commit point.

Inside the tarball::

    kc-etl-tmp/                                 the ETL root, as download-etl.sh archives it
    kc-etl-tmp/bingen/<pipeline>/<res>/<file>   the files of the window
    SHA256SUMS                                  "<sha256>  kc-etl-tmp/bingen/..." per file
    manifest.json                               cluster, window, source, each file's path, size, sha256, range

``SHA256SUMS`` and ``manifest.json`` sit at the top, beside ``kc-etl-tmp/`` and never inside it, so
``tar xzf kubecost-etl.tar.gz && sha256sum -c SHA256SUMS`` works in the directory the bundle was
unpacked in, and ``upload-etl.sh`` moves only ``kc-etl-tmp`` (the ETL data) into the pod. They come last
in the tarball because a file read from the pod is hashed while it passes.

In the store, under ``kubecost-etl-share/<cluster>/<bundle id>/``: ``kubecost-etl.tar.gz`` (a multipart
upload: invisible until complete, aborted on any failure) and then ``manifest.json`` (the same manifest
plus the bundle's own size and sha256). A bundle without ``manifest.json`` does not exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import check_relative_path
from kubecost_etl.etl.windows import iso
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_etl.transfer.tar_stream import BLOCK, DIR_MODE, FILE_MODE, RECORD, parent_directories

from .selection import file_range

log = logging.getLogger(__name__)

FORMAT = "kubecost-etl-share/v1"
ROOT = "kubecost-etl-share"
TOP = "kc-etl-tmp"  # the root download-etl.sh archives and upload-etl.sh requires
BUNDLE_NAME = "kubecost-etl.tar.gz"  # download-etl.sh's output name
SUMS_NAME = "SHA256SUMS"
MANIFEST_NAME = "manifest.json"
PROGRESS_EVERY_S = 10.0


class BundleError(KubecostEtlError, RuntimeError):
    """The bundle could not be written whole; nothing is visible under its final key."""


@dataclass(frozen=True)
class SourceFile:
    """One file on its way into the bundle: its bytes are read once, while they are written."""

    path: str  # relative to the ETL root
    size: int
    mtime: int
    chunks: Iterable[bytes]
    sha256: str | None = None  # when known beforehand (repository), the bytes must match it


def bundle_prefix(cluster_id: str, bundle_id: str) -> str:
    return f"{ROOT}/{cluster_id}/{bundle_id}/"


@dataclass(frozen=True)
class BundleResult:
    """What a finished bundle is: where it lies, its size and sha256, what it holds, and a link."""

    cluster_id: str
    bundle_id: str
    key: str  # relative to the share store's prefix
    manifest_key: str
    location: str  # the store's description + key (no secret)
    size: int
    sha256: str
    files: int
    days: int
    bytes: int  # uncompressed file bytes
    link: str | None = None
    link_expires_at: str | None = None
    link_note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BundleResult:
        return cls(**data)

    def lines(self) -> list[str]:
        lines = [
            f"bundle {self.bundle_id} of {self.cluster_id}: {self.location}",
            f"  {self.size} bytes ({self.size / 1e6:.1f} MB), sha256 {self.sha256}",
            f"  {self.files} file(s), {self.days} day(s), {self.bytes / 1e6:.1f} MB uncompressed",
        ]
        if self.link:
            lines.append(f"  download link (valid until {self.link_expires_at}): {self.link}")
        else:
            lines.append(f"  no download link: {self.link_note}")
        return lines


class _Gzipped:
    """Tar bytes in, gzip bytes out; counts and hashes what leaves."""

    def __init__(self, level: int):
        self._gz = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip container
        self.digest = hashlib.sha256()
        self.size = 0
        self.tar_bytes = 0  # position in the uncompressed tar stream

    def _out(self, data: bytes) -> bytes:
        if data:
            self.digest.update(data)
            self.size += len(data)
        return data

    def write(self, data: bytes) -> bytes:
        self.tar_bytes += len(data)
        return self._out(self._gz.compress(data))

    def close(self) -> bytes:
        return self._out(self._gz.flush())


def _header(name: str, kind: bytes, mode: int, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    # GNU format: long names get a GNU long-name record, which GNU tar and busybox both read.
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


class BundleWriter:
    """Builds the tarball as a stream of gzip chunks; ``entries`` lists what went in."""

    def __init__(self, level: int = 6, now: int | None = None):
        self.gz = _Gzipped(level)
        self.now = int(time.time()) if now is None else now
        self.entries: list[dict] = []
        self._dirs: set[str] = set()
        self._previous = ""
        self.started = time.monotonic()
        self._last_log = self.started
        self.file_bytes = 0

    def stream(self, files: Iterable[SourceFile], describe: dict) -> Iterator[bytes]:
        """The whole bundle: ``TOP/``, every file, ``SHA256SUMS``, ``manifest.json`` (``describe`` +
        files).
        """
        yield from self._emit(_header(TOP + "/", tarfile.DIRTYPE, DIR_MODE, 0, self.now))
        for file in files:
            yield from self._file(file)
        sums = "".join(f"{e['sha256']}  {e['path']}\n" for e in self.entries).encode()
        yield from self._member(SUMS_NAME, sums)
        yield from self._member(MANIFEST_NAME, self.manifest(describe))
        # Two zero blocks end a tar archive; GNU tar pads the whole to a 10 KiB record.
        end = b"\0" * (2 * BLOCK)
        yield from self._emit(end + b"\0" * (-(self.gz.tar_bytes + len(end)) % RECORD))
        tail = self.gz.close()
        if tail:
            yield tail

    def manifest(self, describe: dict) -> bytes:
        body = {
            **describe,
            "format": FORMAT,
            "root": TOP,
            "files": self.entries,
            "counts": {"files": len(self.entries), "bytes": self.file_bytes},
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    def _emit(self, data: bytes) -> Iterator[bytes]:
        out = self.gz.write(data)
        if out:
            yield out

    def _member(self, name: str, data: bytes) -> Iterator[bytes]:
        yield from self._emit(_header(name, tarfile.REGTYPE, FILE_MODE, len(data), self.now))
        yield from self._emit(data + b"\0" * (-len(data) % BLOCK))

    def _file(self, file: SourceFile) -> Iterator[bytes]:
        path = check_relative_path(file.path)
        if path <= self._previous:
            raise BundleError(f"{path}: files must come sorted and once each (after {self._previous!r})")
        self._previous = path
        for directory in parent_directories([path]):
            if directory not in self._dirs:
                self._dirs.add(directory)
                yield from self._emit(_header(f"{TOP}/{directory}/", tarfile.DIRTYPE, DIR_MODE, 0, self.now))
        yield from self._emit(_header(f"{TOP}/{path}", tarfile.REGTYPE, FILE_MODE, file.size, file.mtime))
        digest, seen = hashlib.sha256(), 0
        for chunk in file.chunks:
            seen += len(chunk)
            if seen > file.size:
                raise BundleError(f"{path}: more bytes than the {file.size} announced")
            digest.update(chunk)
            yield from self._emit(chunk)
            self._progress(len(chunk))
        if seen != file.size:
            raise BundleError(f"{path}: {seen} bytes arrived, {file.size} announced")
        sha256 = digest.hexdigest()
        if file.sha256 is not None and sha256 != file.sha256:
            raise BundleError(f"{path}: content does not match its sha256 {file.sha256[:12]}..")
        yield from self._emit(b"\0" * (-file.size % BLOCK))
        span = file_range(path)
        self.entries.append(
            {
                "path": f"{TOP}/{path}",
                "size": file.size,
                "mtime": file.mtime,
                "sha256": sha256,
                "range": list(span) if span else None,
                "range_utc": [iso(span[0]), iso(span[1])] if span else None,
            }
        )

    def _progress(self, nbytes: int) -> None:
        self.file_bytes += nbytes
        now = time.monotonic()
        if now - self._last_log >= PROGRESS_EVERY_S:
            self._last_log = now
            log.info(
                "bundled %d files, %.1f MB in, %.1f MB out, %.1f MB/s",
                len(self.entries),
                self.file_bytes / 1e6,
                self.gz.size / 1e6,
                self.rate_mb_s,
            )

    @property
    def rate_mb_s(self) -> float:
        return self.file_bytes / 1e6 / max(time.monotonic() - self.started, 1e-6)


def existing_bundle(store: ObjectStore, cluster_id: str, bundle_id: str) -> dict | None:
    """The committed manifest of a bundle, if an earlier attempt finished it."""
    try:
        return json.loads(store.read_bytes(bundle_prefix(cluster_id, bundle_id) + MANIFEST_NAME))
    except ObjectNotFound:
        return None


def write_bundle(
    store: ObjectStore,
    cluster_id: str,
    bundle_id: str,
    files: Iterable[SourceFile],
    describe: dict,
    level: int = 6,
) -> tuple[dict, float]:
    """Stream the tarball into the store, then commit its manifest; the manifest and the MB/s rate.

    A failure while streaming aborts the upload (nothing under the final key); a failure writing the
    manifest removes the finished tarball, so no bundle is ever visible half-made.
    """
    prefix = bundle_prefix(cluster_id, bundle_id)
    key, manifest_key = prefix + BUNDLE_NAME, prefix + MANIFEST_NAME
    writer = BundleWriter(level)
    info = store.put(key, writer.stream(files, describe), content_type="application/gzip")
    rate = writer.rate_mb_s
    try:
        if info.size != writer.gz.size:
            raise BundleError(
                f"{store.description}/{key} holds {info.size} bytes, {writer.gz.size} were sent"
            )
        body = json.loads(writer.manifest(describe))
        body["bundle"] = {
            "key": key,
            "name": BUNDLE_NAME,
            "size": writer.gz.size,
            "sha256": writer.gz.digest.hexdigest(),
            "compression": "gzip",
            "level": level,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        store.put_bytes(
            manifest_key, json.dumps(body, indent=1, sort_keys=True).encode(), content_type="application/json"
        )
    except BaseException:
        try:
            store.delete([key])
        except Exception:
            log.warning("could not remove the unfinished bundle %s/%s", store.description, key, exc_info=True)
        raise
    log.info(
        "bundle %s: %d files, %.1f MB -> %.1f MB gzip in %.1f s (%.1f MB/s)",
        key,
        len(writer.entries),
        writer.file_bytes / 1e6,
        writer.gz.size / 1e6,
        time.monotonic() - writer.started,
        rate,
    )
    return body, rate
