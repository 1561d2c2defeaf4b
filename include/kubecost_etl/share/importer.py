"""Importing a tarball (Kubecost's ``download-etl.sh`` output, a share bundle, any ``tar czf`` of the ETL
dir) into the backup repository as a verified snapshot, which the restore pipeline then puts in the pod.

Two passes over the streamed archive, so a refused archive leaves nothing behind:

1. ``check_archive`` reads it to the end and writes nothing: gzip whole (not truncated), every member
   inside the allow-list (one root: ``kc-etl-tmp/``, ``etl/``, ``./`` or a bare ``bingen/``; below it
   only ``bingen/...``; directories and regular files only: no ``..``, absolute names, links, hardlinks,
   devices, fifos, sparse members or members claiming more than ``share.max_import_file_bytes``; no
   duplicates), every file's bingen header intact, and a ``SHA256SUMS`` beside the root (a share
   bundle's) matching every file. It returns each file's size and sha256 and the archive's sha256.
2. ``record_archive`` reads it again: each file is compressed into its content-addressed object as it
   passes (a file whose bytes differ from pass 1 aborts its upload), the archive's sha256 must equal
   pass 1's, then the manifest is written (the commit point) with
   ``source: {"kind": "archive", "key": ..., "sha256": ...}`` and the snapshot is verified in full.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from kubecost_etl.backup.commit import commit_snapshot
from kubecost_etl.backup.plan import Plan
from kubecost_etl.config import BackupSettings
from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl import bingen
from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.snapshots.repository import FileEntry, Repository, new_snapshot_id, object_key
from kubecost_etl.snapshots.verify import VerificationReport, verify_snapshot
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_etl.transfer.archive import ChunkReader, read_in_pieces
from kubecost_etl.transfer.compression import compress, decompress
from kubecost_etl.transfer.tar_stream import parent_directories

from .bundle import MANIFEST_NAME, SUMS_NAME
from .selection import ShareRefused

log = logging.getLogger(__name__)

ROOT_DIRS = ("kc-etl-tmp", "etl")  # download-etl.sh's root, and the "Sharing ETL Backups" doc's
METADATA_NAMES = (SUMS_NAME, MANIFEST_NAME)  # a share bundle's files beside the root
MAX_METADATA_BYTES = 16 << 20
_SHOWN = 10


class ArchiveRefused(ShareRefused):
    """The archive is not imported; nothing was written to the repository."""


class ImportFailed(KubecostEtlError, RuntimeError):
    """Writing an accepted archive into the repository failed (worth a retry)."""


@dataclass(frozen=True)
class ArchiveFile:
    path: str  # relative to the ETL root: bingen/...
    size: int
    mtime: int
    sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ArchiveCheck:
    """What pass 1 found: the archive's identity and every file in it (the plan for pass 2)."""

    cluster_id: str
    key: str  # full object key in the bucket
    location: str
    snapshot_id: str  # chosen once, so a retried record finds its own snapshot
    size: int
    sha256: str
    root: str  # "kc-etl-tmp/", "etl/", "./" or "" (bare bingen/)
    files: tuple[ArchiveFile, ...]
    sums_checked: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def as_dict(self) -> dict:
        return {**asdict(self), "files": [f.as_dict() for f in self.files]}

    @classmethod
    def from_dict(cls, data: dict) -> ArchiveCheck:
        return cls(**{**data, "files": tuple(ArchiveFile(**f) for f in data["files"])})


def archive_location(store: ObjectStore, key: str) -> str:
    return f"{store.description.rstrip('/')}/{key}"


def check_key(store: ObjectStore, key: str) -> int:
    """The archive's size; refuses an empty, malformed or missing key before anything is read."""
    if not isinstance(key, str) or not key.strip():
        raise ArchiveRefused(
            "archive: give the full object key of the tarball in the bucket, as the bucket lists it"
        )
    try:
        info = store.stat(key)
    except ValueError as exc:  # a key with '..', '//' or a leading '/'
        raise ArchiveRefused(f"archive {key!r}: {exc}") from None
    if info is None:
        raise ArchiveRefused(
            f"archive {key!r} does not exist in {store.description} (the key is the full object "
            "name in the bucket; the configured prefix is not added)"
        )
    return info.size


class _Hashed:
    """The archive's raw bytes, counted and hashed as they pass; a non-gzip start is refused at once."""

    def __init__(self, chunks: Iterator[bytes], where: str):
        self.chunks, self.where = chunks, where
        self.digest, self.size = hashlib.sha256(), 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if self.size == 0 and chunk and not chunk.startswith(b"\x1f\x8b"[: len(chunk)]):
                raise ArchiveRefused(
                    f"{self.where} is not a gzip archive (it starts with {chunk[:4]!r}); "
                    "expected a .tar.gz such as download-etl.sh makes"
                )
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


class _Walk:
    """The allow-list, applied member by member."""

    def __init__(self, where: str, max_file_bytes: int):
        self.where, self.max_file_bytes = where, max_file_bytes
        self.root: str | None = None
        self.files: dict[str, tarfile.TarInfo] = {}
        self.dirs: set[str] = set()
        self.metadata: dict[str, tarfile.TarInfo] = {}

    def refuse(self, member: tarfile.TarInfo, why: str) -> ArchiveRefused:
        return ArchiveRefused(f"{self.where}: member {member.name!r} refused: {why}; nothing was imported")

    def classify(self, member: tarfile.TarInfo) -> tuple[str, str]:
        """``("file"|"dir"|"meta", path)``: the path relative to the ETL root (or the metadata name)."""
        name = member.name
        if name.startswith("/"):
            raise self.refuse(member, "absolute path")
        if member.issym() or member.islnk():
            raise self.refuse(
                member, f"a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
            )
        if member.ischr() or member.isblk() or member.isfifo():
            raise self.refuse(member, "a device or fifo")
        if member.issparse():
            raise self.refuse(member, f"a sparse member claiming {member.size} bytes")
        if not (member.isreg() or member.isdir()):
            raise self.refuse(member, f"unsupported member type {member.type!r}")
        parts = name.rstrip("/").split("/")
        if ".." in parts:
            raise self.refuse(member, "'..' in the path")
        lead = ""
        if parts[0] == "." and len(parts) > 1:  # tar czf x.tar.gz . (or ./kc-etl-tmp)
            lead, parts = "./", parts[1:]
        if parts == ["."]:
            if not member.isdir():
                raise self.refuse(member, "the archive root is a file")
            return "dir", ""
        if len(parts) == 1 and parts[0] in METADATA_NAMES and member.isreg():
            if member.size > MAX_METADATA_BYTES:
                raise self.refuse(member, f"{member.size} bytes is too large for {parts[0]}")
            return "meta", parts[0]
        if member.isreg() and member.size > self.max_file_bytes:
            raise self.refuse(
                member,
                f"it claims {member.size} bytes, more than share.max_import_file_bytes "
                f"({self.max_file_bytes})",
            )
        root, rest = self._split_root(member, lead, parts)
        if self.root is None:
            self.root = root
        elif root != self.root:
            raise self.refuse(
                member, f"a second root {root or 'bingen/'!r} beside {self.root or 'bingen/'!r}"
            )
        if not rest:
            if member.isreg():
                raise self.refuse(member, "the archive root is a file")
            return "dir", ""
        path = "/".join(rest)
        if rest[0] != "bingen":
            raise self.refuse(member, "not under bingen/ (only Kubecost's set files are imported)")
        try:
            check_relative_path(path)
        except UnsafePathError as exc:
            raise self.refuse(member, str(exc)) from None
        if path in self.files or (member.isreg() and path in self.dirs):
            raise self.refuse(member, "the archive holds this path twice")
        if member.isdir():
            self.dirs.add(path)
            return "dir", path
        self.files[path] = member
        return "file", path

    def _split_root(self, member: tarfile.TarInfo, lead: str, parts: list[str]) -> tuple[str, list[str]]:
        if parts[0] in ROOT_DIRS:
            return f"{lead}{parts[0]}/", parts[1:]
        if parts[0] == "bingen":
            return lead, parts
        raise self.refuse(member, f"unknown root {parts[0]!r}: expected kc-etl-tmp/, etl/, ./ or bingen/")

    def finish(self) -> None:
        clash = sorted(set(parent_directories(self.files)) & set(self.files))
        if clash:
            raise ArchiveRefused(
                f"{self.where}: {clash[0]!r} is both a file and a directory; nothing was imported"
            )
        if not self.files:
            raise ArchiveRefused(f"{self.where} holds no files under bingen/: nothing to import")


class _ArchiveStream:
    """The archive streamed from the store as ``(archive, member)`` pairs; iteration ends only after the
    gzip trailer checked out. ``hashed`` counts and hashes the raw bytes read."""

    def __init__(self, store: ObjectStore, key: str, where: str):
        self.store, self.key, self.where = store, key, where
        self.hashed: _Hashed | None = None

    def __iter__(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        try:
            raw = self.store.open_read(self.key)
        except ObjectNotFound:
            raise ArchiveRefused(f"{self.where} does not exist") from None
        self.hashed = _Hashed(raw, self.where)
        reader = ChunkReader(decompress(self.hashed, "gzip"))
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            for member in archive:
                yield archive, member
        reader.drain()  # to the gzip trailer: a truncated archive fails here

    @contextmanager
    def refusing_damage(self) -> Iterator[None]:
        """Around the whole walk (members and their bytes): a broken archive is a refusal."""
        where = self.where
        try:
            yield
        except ArchiveRefused:
            raise
        except zlib.error as exc:
            raise ArchiveRefused(f"{where}: the gzip data is damaged ({exc}); nothing was imported") from None
        except ValueError as exc:  # decompress(): "gzip stream is truncated"
            raise ArchiveRefused(f"{where} is truncated or damaged ({exc}); nothing was imported") from None
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveRefused(
                f"{where}: not a readable tar archive ({exc}); nothing was imported"
            ) from None


def _read_all(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    source = archive.extractfile(member)
    return read_in_pieces(source) if source is not None else iter(())


def check_archive(store: ObjectStore, cluster_id: str, key: str, max_file_bytes: int) -> ArchiveCheck:
    """Pass 1: read the whole archive, write nothing; refuse it at the first member outside the allow-list."""
    check_key(store, key)
    where = f"archive {archive_location(store, key)}"
    walk = _Walk(where, max_file_bytes)
    files: list[ArchiveFile] = []
    damaged: list[str] = []
    sums_text: bytes | None = None
    stream = _ArchiveStream(store, key, where)
    with stream.refusing_damage():
        for archive, member in stream:
            kind, path = walk.classify(member)
            if kind == "meta":
                data = b"".join(_read_all(archive, member))
                if path == SUMS_NAME:
                    sums_text = data
                continue
            if kind == "dir":
                continue
            digest, head, size = hashlib.sha256(), bytearray(), 0
            for piece in _read_all(archive, member):
                digest.update(piece)
                size += len(piece)
                if len(head) < bingen.HEADER_PROBE_BYTES:
                    head += piece[: bingen.HEADER_PROBE_BYTES - len(head)]
            check = bingen.check_header(bytes(head), size)
            if not check.ok:
                damaged.append(f"{path}: {check.reason}")
            files.append(ArchiveFile(path, size, int(member.mtime), digest.hexdigest()))
    hashed = stream.hashed
    walk.finish()
    if damaged:
        raise ArchiveRefused(
            f"{where}: {len(damaged)} set file(s) with a damaged bingen header, nothing was "
            "imported: " + "; ".join(damaged[:_SHOWN])
        )
    sums_checked = False
    if sums_text is not None:
        _check_sums(sums_text, files, walk.root or "", where)
        sums_checked = True
    files.sort(key=lambda f: f.path)
    result = ArchiveCheck(
        cluster_id,
        key,
        archive_location(store, key),
        new_snapshot_id(),
        hashed.size,
        hashed.digest.hexdigest(),
        walk.root or "",
        tuple(files),
        sums_checked,
    )
    log.info(
        "%s accepted: root %r, %d files, %.1f MB, sha256 %s%s",
        where,
        result.root or "bingen/",
        len(files),
        result.total_bytes / 1e6,
        result.sha256,
        ", SHA256SUMS matches" if sums_checked else "",
    )
    return result


def _check_sums(text: bytes, files: list[ArchiveFile], root: str, where: str) -> None:
    """A share bundle's SHA256SUMS must name exactly the archive's files, with their hashes."""
    listed: dict[str, str] = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            listed[name.lstrip("*")] = digest
    actual = {root + f.path: f.sha256 for f in files}
    wrong = sorted(name for name in set(listed) | set(actual) if listed.get(name) != actual.get(name))
    if wrong:
        raise ArchiveRefused(
            f"{where}: {SUMS_NAME} does not match the archive's files ({len(wrong)}: "
            f"{wrong[:_SHOWN]}); nothing was imported"
        )


@dataclass(frozen=True)
class ImportedSnapshot:
    """An archive recorded as a verified snapshot (``record_archive``'s result; XCom: ``as_dict``)."""

    cluster_id: str
    snapshot_id: str
    repository: str
    archive: str  # where the archive was read (no secrets)
    archive_sha256: str
    files: int
    bytes: int
    objects: int
    rehashed: int

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | ImportedSnapshot) -> ImportedSnapshot:
        return data if isinstance(data, ImportedSnapshot) else cls(**data)


def record_archive(
    store: ObjectStore,
    repo: Repository,
    checked: ArchiveCheck,
    settings: BackupSettings,
    hourly_hours: int = 49,
) -> ImportedSnapshot:
    """Pass 2: objects first (each checked against pass 1), the manifest last, then a full verification."""
    where = f"archive {checked.location}"
    if checked.snapshot_id in repo.snapshot_ids():
        log.info("snapshot %s was committed by an earlier attempt; verifying it", checked.snapshot_id)
    else:
        _write_objects(store, repo, checked, settings, where)
        plan = Plan(checked.snapshot_id, repo.cluster_id, None, reuse=[], transfer=[])
        stored = repo.object_sizes()
        entries = [
            asdict(
                FileEntry(
                    f.path,
                    f.size,
                    f.mtime,
                    f.sha256,
                    object_key(f.sha256, settings.compression),
                    stored[object_key(f.sha256, settings.compression)],
                    settings.compression,
                )
            )
            for f in checked.files
        ]
        streamed = {
            "entries": entries,
            "stats": {
                "files": len(entries),
                "bytes": checked.total_bytes,
                "stored_bytes": sum(e["stored_size"] for e in entries),
            },
        }
        source = {
            "kind": "archive",
            "key": checked.key,
            "location": checked.location,
            "sha256": checked.sha256,
            "size": checked.size,
            "root": checked.root,
        }
        commit_snapshot(repo, plan, streamed, source, hourly_hours)
    report = VerificationReport.from_dict(verify_snapshot(repo, checked.snapshot_id, full=True))
    if not report.ok:
        findings = list(report.problems) + [f"{d['path']}: {d['reason']}" for d in report.damaged]
        raise ImportFailed(
            f"snapshot {checked.snapshot_id} imported from {where} failed verification: "
            + "; ".join(findings[:_SHOWN])
        )
    return ImportedSnapshot(
        cluster_id=repo.cluster_id,
        snapshot_id=checked.snapshot_id,
        repository=repo.description,
        archive=checked.location,
        archive_sha256=checked.sha256,
        files=len(checked.files),
        bytes=checked.total_bytes,
        objects=report.objects,
        rehashed=report.rehashed,
    )


def _write_objects(
    store: ObjectStore, repo: Repository, checked: ArchiveCheck, settings: BackupSettings, where: str
) -> None:
    expected = {f.path: f for f in checked.files}
    stored = repo.reusable_objects()  # a quarantined object is written again from the archive
    walk = _Walk(where, max(f.size for f in checked.files))
    written = 0
    stream = _ArchiveStream(store, checked.key, where)
    with stream.refusing_damage():
        for archive, member in stream:
            kind, path = walk.classify(member)
            if kind != "file":
                continue
            planned = expected.get(path)
            if planned is None or planned.size != member.size:
                raise ArchiveRefused(f"{where} changed since it was checked ({path}); nothing was committed")
            key = object_key(planned.sha256, settings.compression)
            chunks = _matching(_read_all(archive, member), planned, where)
            if key in stored:
                for _ in chunks:  # still read and checked, though its object is stored already
                    pass
                continue
            repo.store.put(repo.key(key), compress(chunks, settings.compression, settings.compression_level))
            stored[key] = -1
            written += 1
    hashed = stream.hashed
    if hashed.digest.hexdigest() != checked.sha256:
        raise ArchiveRefused(
            f"{where} changed since it was checked (sha256 {hashed.digest.hexdigest()[:12]}.., "
            f"checked {checked.sha256[:12]}..); nothing was committed"
        )
    log.info(
        "%s: %d new object(s) stored, %d already in the repository",
        where,
        written,
        len({f.sha256 for f in checked.files}) - written,
    )


def _matching(chunks: Iterator[bytes], planned: ArchiveFile, where: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != planned.sha256:
        # Raised inside the upload's body: the store aborts it, no object under a wrong key.
        raise ArchiveRefused(f"{where} changed since it was checked ({planned.path}); nothing was committed")


def describe_check(checked: ArchiveCheck) -> str:
    return json.dumps(
        {
            "archive": checked.location,
            "sha256": checked.sha256,
            "files": len(checked.files),
            "bytes": checked.total_bytes,
            "root": checked.root or "bingen/",
        }
    )
