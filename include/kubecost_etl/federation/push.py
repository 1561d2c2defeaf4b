"""Pushing planned files pod -> bucket, raw: one ``tar`` exec per batch, each member hashed while it is
uploaded under its final key with its sha256 and source mtime as object metadata.

The stores' ``put`` makes an object appear whole or not at all (S3/GCS/Azure abort the multipart
upload, the filesystem store writes a temporary file and renames it), and Kubecost reads these keys
directly, so a member whose bytes do not match the planned sha256 raises inside the upload: the upload
is aborted, the old object stays, and the file is re-hashed and read again (it changed while read).
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import check_relative_path
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.pod_files import hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.storage.base import ObjectStore
from kubecost_etl.transfer.archive import ChunkReader, read_in_pieces

from .layout import FederatedLayout
from .owner import Owner, claim
from .plan import FederatePlan, PushItem
from .remote import RemoteFile, metadata_for, remote_state, uploaded_file, write_index
from .settings import FederatedSettings

log = logging.getLogger(__name__)
MAX_READ_ATTEMPTS = 3


class PushError(KubecostEtlError, RuntimeError):
    pass


class _Changed(Exception):
    """A member's bytes or size differ from the plan: it changed while being read."""


@dataclass(frozen=True)
class PushResult:
    cluster_id: str
    federated_id: str
    pushed: tuple[dict, ...]  # {path, key, size, mtime, sha256}
    bytes: int
    seconds: float
    reread: tuple[str, ...] = ()  # files read more than once because they changed while read
    dropped: tuple[str, ...] = ()  # deleted from the pod since the plan (Kubecost's own retention)
    index_written: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("pushed", "reread", "dropped"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PushResult:
        return cls(
            **{
                **data,
                "pushed": tuple(data["pushed"]),
                "reread": tuple(data.get("reread", ())),
                "dropped": tuple(data.get("dropped", ())),
            }
        )


def push_files(
    core_api,
    target: ExecTarget,
    store: ObjectStore,
    settings: FederatedSettings,
    plan: FederatePlan,
    me: Owner,
) -> PushResult:
    layout = FederatedLayout(settings.layout, settings.cluster_id)
    started = time.monotonic()
    # Refuses another writer before the first data byte; writes the marker only when it is not ours yet
    # (a taken-over prefix gets our marker even when no file changed; an unchanged run writes nothing).
    claim(store, layout, me, settings.take_over)
    if not plan.uploads:
        return PushResult(plan.cluster_id, settings.cluster_id, (), 0, 0.0)
    pending = {item.path: item for item in plan.uploads}
    done: dict[str, RemoteFile] = {}
    pushed: list[dict] = []
    reread: set[str] = set()
    dropped: list[str] = []
    total = 0
    for attempt in range(1, MAX_READ_ATTEMPTS + 1):
        if not pending:
            break
        for names in command_batches(_tar(target, []), sorted(pending), max_count=settings.batch_files):
            got, _changed, nbytes = _push_batch(
                core_api, target, store, layout, {p: pending[p] for p in names}
            )
            total += nbytes
            for item, remote in got:
                pending.pop(item.path)
                done[remote.key] = remote
                pushed.append(
                    {
                        "path": item.path,
                        "key": remote.key,
                        "size": item.size,
                        "mtime": item.mtime,
                        "sha256": item.sha256,
                    }
                )
        if not pending:
            break
        current = {f.path: f for f in list_files(core_api, target)[0]}
        for path in [p for p in pending if p not in current]:
            dropped.append(path)  # deleted since the plan: nothing to push, nothing deleted in the bucket
            pending.pop(path)
        again = sorted(pending)
        if again:
            log.warning(
                "attempt %d: %d file(s) changed while read, reading again: %s", attempt, len(again), again[:5]
            )
            reread.update(again)
            digests = hash_files(core_api, target, again, settings.batch_files)
            for path in again:
                pending[path] = replace(
                    pending[path], size=current[path].size, mtime=current[path].mtime, sha256=digests[path]
                )
    if pending:
        raise PushError(
            f"{len(pending)} file(s) kept changing over {MAX_READ_ATTEMPTS} reads: {sorted(pending)[:5]}"
        )
    index_written = write_index(store, layout, remote_state(store, layout, done), done) if done else False
    seconds = round(time.monotonic() - started, 3)
    log.info(
        "pushed %d file(s), %.1f MB in %.1f s to %s/%s",
        len(pushed),
        total / 1e6,
        seconds,
        store.description,
        layout.describe(),
    )
    return PushResult(
        plan.cluster_id,
        settings.cluster_id,
        tuple(pushed),
        total,
        seconds,
        tuple(sorted(reread)),
        tuple(dropped),
        index_written,
    )


def _tar(target: ExecTarget, paths: list[str]) -> list[str]:
    return ["tar", "cf", "-", "-C", target.etl_root.rstrip("/"), *paths]


def _push_batch(
    core_api, target: ExecTarget, store: ObjectStore, layout: FederatedLayout, batch: dict[str, PushItem]
) -> tuple[list[tuple[PushItem, RemoteFile]], list[str], int]:
    got, changed, nbytes = [], [], 0
    with target.exec(core_api, _tar(target, list(batch))) as session:
        reader = ChunkReader(session.stdout())
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                for member in archive:
                    path = check_relative_path(member.name.removeprefix("./"))
                    item = batch.get(path)
                    if item is None or not member.isreg():
                        raise PushError(f"unexpected tar member {member.name!r} (type {member.type!r})")
                    try:
                        got.append((item, _push_member(store, layout, archive, member, item)))
                        nbytes += item.size
                    except _Changed:
                        changed.append(path)
            reader.drain()
        except ExecError as exc:
            if exc.exit_code is None:  # a cut stream: the task fails and its retry starts over
                raise
            log.warning("tar reported a problem (handled per file): %s", exc)
        except tarfile.ReadError as exc:
            raise ExecError(f"tar stream from {target.pod.name} is broken: {exc}") from exc
    return got, changed, nbytes


def _push_member(
    store: ObjectStore,
    layout: FederatedLayout,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    item: PushItem,
) -> RemoteFile:
    if member.size != item.size:
        raise _Changed(item.path)  # tarfile skips the unread bytes by itself
    source = archive.extractfile(member)
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for piece in read_in_pieces(source):
            digest.update(piece)
            yield piece
        if digest.hexdigest() != item.sha256:
            raise _Changed(item.path)  # raised inside the upload: the store aborts it, the old object stays

    key = layout.key(item.path)
    # The metadata mtime is the planned one: tar's member mtime is the same second (stat %Y) when unchanged.
    info = store.put(key, hashed(), metadata=metadata_for(item.sha256, item.mtime))
    return uploaded_file(info, item.sha256, item.mtime)
