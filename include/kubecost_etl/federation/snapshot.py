"""Backing up federated storage: snapshot ``[<prefix>/]federated/<cluster id>/etl/bingen`` (or the durable
``etl/bingen``) from the bucket into the cluster's content-addressed backup repository.

The same plan/stream/commit/verify contract as a backup from the pod (``backup.source: federated``):
``plan_from_bucket`` returns a ``backup.plan.Plan`` and ``stream_from_bucket`` the ``stream_files``
result, so ``backup.commit.commit_snapshot`` and ``snapshots.verify.verify_snapshot`` apply unchanged.

Objects pushed by this project carry their sha256 and source mtime in metadata. Objects written by
Kubecost's own agent carry none: their mtime is the object's last-modified time and their sha256 is
computed by reading them once during the plan. Every object is hashed again while it is copied; a
mismatch (the object was replaced meanwhile) aborts that upload and the object is planned again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

from kubecost_etl.backup.plan import Plan
from kubecost_etl.backup.stream import BackupError, Streamed, StreamStats
from kubecost_etl.config import BackupSettings
from kubecost_etl.snapshots.repository import FileEntry, Repository, new_snapshot_id, object_key
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_etl.transfer.compression import compress

from .layout import FederatedLayout
from .remote import RemoteFile, remote_state
from .settings import FederatedSettings

log = logging.getLogger(__name__)
MAX_READ_ATTEMPTS = 3


class _Replaced(Exception):
    pass


def _identity(store: ObjectStore, remote: RemoteFile) -> tuple[int, int, str | None]:
    """(size, mtime, sha256) of a bucket object; mtime falls back to its last-modified time."""
    if remote.described:
        return remote.size, remote.mtime, remote.sha256
    info = store.stat(remote.key)
    if info is None:
        raise ObjectNotFound(f"{store.description}/{remote.key}")
    modified = int(info.last_modified.timestamp()) if info.last_modified else 0
    return info.size, modified, None


def _sha256(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    for piece in store.open_read(key):
        digest.update(piece)
    return digest.hexdigest()


def plan_from_bucket(
    store: ObjectStore, federated: FederatedSettings, repo: Repository, settings: BackupSettings
) -> Plan:
    layout = FederatedLayout(federated.layout, federated.cluster_id)
    state = remote_state(store, layout)
    base_id = repo.latest_good()
    base = {e.path: e for e in repo.load_manifest(base_id).files} if base_id else {}
    stored = repo.reusable_objects()  # all but the quarantined: their files are copied again
    reuse, transfer, refused = [], [], []
    for key, remote in sorted(state.files.items()):
        path = layout.relative_path(key)
        try:
            size, mtime, sha256 = _identity(store, remote)
        except ObjectNotFound:
            continue  # deleted since the listing (the federated retention): not part of this snapshot
        previous = base.get(path)
        if (
            previous
            and previous.object in stored
            and (previous.size, previous.mtime) == (size, mtime)
            and previous.compression == settings.compression
            and (sha256 is None or previous.sha256 == sha256)
        ):
            reuse.append(asdict(previous))
            continue
        sha256 = sha256 or _sha256(store, key)  # an object without our metadata is read once to hash it
        stored_key = object_key(sha256, settings.compression)
        if stored_key in stored:
            reuse.append(
                asdict(
                    FileEntry(path, size, mtime, sha256, stored_key, stored[stored_key], settings.compression)
                )
            )
        else:
            transfer.append({"path": path, "size": size, "mtime": mtime, "sha256": sha256})
    plan = Plan(new_snapshot_id(), repo.cluster_id, base_id, reuse, transfer, refused)
    log.info(
        "plan for %s from %s/%s: %s", repo.cluster_id, store.description, layout.describe(), plan.summary()
    )
    return plan


def stream_from_bucket(
    store: ObjectStore,
    federated: FederatedSettings,
    repo: Repository,
    transfer: list[dict],
    settings: BackupSettings,
) -> Streamed:
    layout = FederatedLayout(federated.layout, federated.cluster_id)
    started = time.monotonic()
    pending = {t["path"]: dict(t) for t in transfer}
    entries: list[FileEntry] = []
    dropped: list[str] = []
    nbytes = 0
    for _attempt in range(MAX_READ_ATTEMPTS):
        for path in sorted(pending):
            item = pending[path]
            try:
                entries.append(_copy(store, layout.key(path), repo, item, settings))
                nbytes += item["size"]
                pending.pop(path)
            except ObjectNotFound:
                dropped.append(path)
                pending.pop(path)
            except _Replaced:
                info = store.stat(layout.key(path))
                if info is None:
                    dropped.append(path)
                    pending.pop(path)
                    continue
                remote = remote_state(store, layout).files.get(layout.key(path))
                size, mtime, sha256 = _identity(store, remote) if remote else (info.size, 0, None)
                item.update(size=size, mtime=mtime, sha256=sha256 or _sha256(store, layout.key(path)))
        if not pending:
            break
    if pending:
        raise BackupError(
            f"{len(pending)} object(s) kept changing over {MAX_READ_ATTEMPTS} reads: {sorted(pending)[:5]}"
        )
    seconds = round(time.monotonic() - started, 3)
    stats = StreamStats(
        files=len(entries),
        bytes=nbytes,
        stored_bytes=sum(e.stored_size for e in entries),
        seconds=seconds,
        mb_per_s=round(nbytes / 1e6 / max(seconds, 1e-6), 1),
        dropped=tuple(dropped),
    )
    return Streamed(tuple(entries), stats)


def _copy(store: ObjectStore, key: str, repo: Repository, item: dict, settings: BackupSettings) -> FileEntry:
    digest, size = hashlib.sha256(), 0

    def hashed():
        nonlocal size
        for piece in store.open_read(key):
            digest.update(piece)
            size += len(piece)
            yield piece
        if digest.hexdigest() != item["sha256"] or size != item["size"]:
            raise _Replaced(key)  # inside the upload: the repository object is never completed

    stored_key = object_key(item["sha256"], settings.compression)
    chunks = hashed()
    first = next(chunks, None)  # a missing object raises ObjectNotFound here, before any upload starts

    def all_chunks():
        if first is not None:
            yield first
        yield from chunks

    info = repo.store.put(
        repo.key(stored_key), compress(all_chunks(), settings.compression, settings.compression_level)
    )
    return FileEntry(
        item["path"], item["size"], item["mtime"], item["sha256"], stored_key, info.size, settings.compression
    )
