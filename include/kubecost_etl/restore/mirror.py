"""Restoring from a cluster's federated mirror instead of a snapshot (``source: federated`` or ``durable``).

A mirror has no manifest: the bucket listing is the only statement of what it holds, so it is treated
as untrusted input and pinned the same way a snapshot's manifest is.

- ``list_mirror`` (preflight, and again under the lease): every object under the chosen layout's
  ``etl/bingen/`` with its size, the sha256 and source mtime kept in its metadata, and its ETag. Keys
  must map to allow-listed paths (no file that is also a directory); an empty layout is refused, naming
  the layout the cluster's ``federated.layout`` says this project writes. ``digest`` pins the listing.
- ``verify_mirror`` (before anything touches the pod): the listing must still be the pinned one; every
  object is read once and re-hashed while it is read, its size and metadata sha256 compared and its
  bingen header checked. Any mismatch is a ``MirrorRefused`` naming the cluster and the key.
  Objects written by Kubecost itself carry no sha256 metadata: their sha256 is the one read here,
  recorded as ``verified_by: "read"`` (nothing to compare it with), and reported as such.
- ``entries`` turns the verified listing into ``FileEntry`` values, so the restore's plan, staged
  check and post-check compare against exactly the verified sha256s; ``content`` reads an object for
  the staging tar stream and refuses bytes that differ from what was verified (the object was
  replaced since), before the tar member is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kubecost_etl.etl import bingen
from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.federation.layout import FederatedLayout, file_window
from kubecost_etl.federation.remote import remote_state
from kubecost_etl.federation.settings import FederatedSettings, Layout
from kubecost_etl.snapshots.pinned import RestoreRefused
from kubecost_etl.snapshots.repository import FileEntry
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_etl.transfer.tar_stream import parent_directories

log = logging.getLogger(__name__)
MIRROR_COMPRESSION = "none"  # FileEntry.compression of a mirror object: raw bytes, read as stored
VERIFIED_BY_METADATA = "metadata"  # the bytes read match the sha256 in the object's metadata
VERIFIED_BY_READ = "read"  # no sha256 metadata (written by Kubecost itself): the sha256 is the one read
_SHOWN = 10


class MirrorRefused(RestoreRefused):
    """The mirror cannot be restored as it is; raised before anything in the pod is touched."""


@dataclass(frozen=True)
class MirrorFile:
    path: str  # relative to the ETL root (bingen/...)
    key: str  # the object key under the store's prefix
    size: int
    mtime: int  # the source mtime from metadata, else the object's last-modified time
    meta_sha256: str | None  # from the object's metadata; None when it carries none of ours
    etag: str | None
    sha256: str = ""  # after verify_mirror: the sha256 of the bytes read
    verified_by: str = ""

    def identity(self) -> list:
        return [self.path, self.key, self.size, self.mtime, self.meta_sha256, self.etag]


@dataclass(frozen=True)
class MirrorListing:
    source: str  # federated | durable
    cluster_id: str  # the cluster in this configuration
    federated_id: str  # Kubecost's cluster id in the federated layout
    location: str  # store and key prefix, for messages
    files: tuple[MirrorFile, ...]

    @property
    def digest(self) -> str:
        """Pins the listing (keys, sizes, mtimes, metadata sha256s, ETags); not the verified hashes."""
        body = json.dumps([f.identity() for f in self.files], separators=(",", ":")).encode()
        return hashlib.sha256(body).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def verified(self) -> bool:
        return bool(self.files) and all(f.sha256 for f in self.files)

    def entries(self) -> list[FileEntry]:
        """The verified files as the restore stages compare them (sha256 as read, object = the key)."""
        if not self.verified:
            raise ValueError("the mirror listing is not verified")
        return [
            FileEntry(f.path, f.size, f.mtime, f.sha256, f.key, f.size, MIRROR_COMPRESSION)
            for f in self.files
        ]

    def by_path(self) -> dict[str, MirrorFile]:
        return {f.path: f for f in self.files}

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "cluster_id": self.cluster_id,
            "federated_id": self.federated_id,
            "location": self.location,
            "digest": self.digest,
            "files": [dataclasses.asdict(f) for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict) -> MirrorListing:
        listing = cls(
            data["source"],
            data["cluster_id"],
            data["federated_id"],
            data["location"],
            tuple(MirrorFile(**f) for f in data["files"]),
        )
        if "digest" in data and data["digest"] != listing.digest:
            raise MirrorRefused(
                f"cluster {listing.cluster_id!r}: the verified mirror listing handed between "
                "tasks does not match its own digest"
            )
        return listing


def mirror_layout(source: str, federated: FederatedSettings) -> FederatedLayout:
    """The layout a ``source`` param reads: ``federated`` or ``durable`` (whatever the config writes)."""
    return FederatedLayout(Layout(source), federated.cluster_id)


def _where(store: ObjectStore, layout: FederatedLayout) -> str:
    return f"{store.description}/{layout.describe()}"


def list_mirror(
    store: ObjectStore, federated: FederatedSettings, source: str, cluster_id: str
) -> MirrorListing:
    """What the chosen layout holds for the cluster; refuses an empty layout and unsafe or clashing keys."""
    layout = mirror_layout(source, federated)
    where = _where(store, layout)
    problems = []
    for info in store.list(layout.data_prefix):  # names first: an unsafe key is never even asked about
        path = layout.relative_path(info.key)
        if path is None or info.key.endswith("/"):
            continue  # a "directory" placeholder some tools create; nothing to restore
        try:
            check_relative_path(path)
        except UnsafePathError as exc:
            problems.append(f"object {info.key}: {exc}")
    if problems:
        _refuse(cluster_id, source, where, problems)
    state = remote_state(store, layout)
    files = []
    for key, remote in sorted(state.files.items()):
        path = layout.relative_path(key)
        if path is None or key.endswith("/"):
            continue
        check_relative_path(path)  # listed again: a key that appeared since is checked too
        mtime = remote.mtime
        if mtime is None:  # not written by this project: its last-modified time stands in, as for a backup
            info = store.stat(key)
            if info is None:
                continue  # deleted since the listing (a retention run): not part of the mirror now
            mtime = int(info.last_modified.timestamp()) if info.last_modified else 0
        files.append(MirrorFile(path, key, remote.size, mtime, remote.sha256, remote.etag))
    paths = {f.path for f in files}
    for f in files:
        clash = next((d for d in parent_directories([f.path]) if d in paths), None)
        if clash:
            problems.append(f"object {f.key}: {clash!r} is also an object, so it cannot be a directory")
    if problems:
        _refuse(cluster_id, source, where, problems)
    if not files:
        hint = ""
        if federated.layout.value != source:
            hint = (
                f"; this cluster's federated.layout is {federated.layout.value} (the federate DAG writes "
                f"{_where(store, mirror_layout(federated.layout.value, federated))}): "
                f"use source {federated.layout.value}"
            )
        raise MirrorRefused(f"cluster {cluster_id!r}: the {source} layout holds no files in {where}{hint}")
    return MirrorListing(source, cluster_id, federated.cluster_id, where, tuple(files))


def _refuse(cluster_id: str, source: str, where: str, problems: list[str]) -> None:
    raise MirrorRefused(
        f"cluster {cluster_id!r}: the {source} mirror in {where} is refused ({len(problems)} problem(s)): "
        + "; ".join(problems[:_SHOWN])
    )


def verify_mirror(
    store: ObjectStore, federated: FederatedSettings, source: str, cluster_id: str, pinned_digest: str
) -> tuple[MirrorListing, dict]:
    """List again, refuse a listing other than the pinned one, then read and re-hash every object.

    Returns the verified listing (each file's sha256 as read) and a report. Anything that does not
    match (size, metadata sha256, a broken bingen header, an object gone) is a ``MirrorRefused``.
    """
    listing = list_mirror(store, federated, source, cluster_id)
    if listing.digest != pinned_digest:
        raise MirrorRefused(
            f"cluster {cluster_id!r}: the {source} mirror in {listing.location} changed since "
            f"this restore listed it (listing sha256 {pinned_digest[:12]}.. now "
            f"{listing.digest[:12]}..; was the federate DAG or Kubecost writing?): trigger the "
            "restore again"
        )
    verified, problems = [], []
    for f in listing.files:
        sha256, problem = _read_and_check(store, f)
        if problem:
            problems.append(f"{f.key}: {problem}")
            continue
        by = VERIFIED_BY_METADATA if f.meta_sha256 else VERIFIED_BY_READ
        verified.append(dataclasses.replace(f, sha256=sha256, verified_by=by))
    if problems:
        raise MirrorRefused(
            f"cluster {cluster_id!r}: the {source} mirror in {listing.location} failed "
            f"verification ({len(problems)} object(s)), nothing was restored: " + "; ".join(problems[:_SHOWN])
        )
    result = dataclasses.replace(listing, files=tuple(verified))
    unverifiable = [f.key for f in verified if f.verified_by == VERIFIED_BY_READ]
    if unverifiable:
        log.warning(
            "%d object(s) of %s carry no sha256 metadata (written by Kubecost itself?): hashed as read, "
            "nothing to compare with; restored as they are: %s",
            len(unverifiable),
            listing.location,
            unverifiable[:_SHOWN],
        )
    report = {
        "source": source,
        "location": listing.location,
        "digest": listing.digest,
        "objects": len(verified),
        "bytes": result.total_bytes,
        "rehashed": len(verified),
        "verified_by_metadata": len(verified) - len(unverifiable),
        "unverifiable_against_metadata": len(unverifiable),
        "unverifiable_keys": unverifiable[:100],
    }
    return result, report


def _read_and_check(store: ObjectStore, f: MirrorFile) -> tuple[str, str | None]:
    """(sha256 as read, problem or None) for one object: size, metadata sha256 and bingen header."""
    digest, size, head = hashlib.sha256(), 0, bytearray()
    try:
        for piece in store.open_read(f.key):
            digest.update(piece)
            size += len(piece)
            if len(head) < bingen.HEADER_PROBE_BYTES:
                head += piece[: bingen.HEADER_PROBE_BYTES - len(head)]
    except ObjectNotFound:
        return "", "gone since it was listed"
    sha256 = digest.hexdigest()
    if size != f.size:
        return sha256, f"{size} bytes read, the listing says {f.size}"
    if f.meta_sha256 is not None and sha256 != f.meta_sha256:
        return (
            sha256,
            f"content sha256 {sha256[:12]}.. differs from its metadata sha256 {f.meta_sha256[:12]}..",
        )
    if file_window(f.path) is not None:
        check = bingen.check_header(bytes(head), size)
        if not check.ok:
            return sha256, f"bingen header check failed: {check.reason}"
    return sha256, None


def content(store: ObjectStore, f: MirrorFile, cluster_id: str) -> Callable[[], Iterator[bytes]]:
    """The object's bytes for the staging stream; a difference from what was verified is refused.

    The check runs when the object's last byte has passed, before the tar member is complete (the tar
    writer's own size and sha256 check comes after it), so the staged tree is abandoned, never swapped.
    """

    def read() -> Iterator[bytes]:
        digest, size = hashlib.sha256(), 0
        try:
            for piece in store.open_read(f.key):
                size += len(piece)
                if size > f.size:
                    break
                digest.update(piece)
                yield piece
        except ObjectNotFound:
            raise MirrorRefused(
                f"cluster {cluster_id!r}: mirror object {f.key} is gone since it was verified; "
                "nothing was swapped"
            ) from None
        if size != f.size or digest.hexdigest() != f.sha256:
            raise MirrorRefused(
                f"cluster {cluster_id!r}: mirror object {f.key} changed since it was verified; "
                "nothing was swapped: trigger the restore again"
            )

    return read
