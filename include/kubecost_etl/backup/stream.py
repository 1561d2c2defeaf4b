"""Streaming planned files pod -> store: one tar exec per batch, each member hashed, compressed and
uploaded as it arrives, in bounded memory. A file whose bytes no longer match the plan's hash is
read again; its partial upload is aborted, never completed."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict

from kubecost_etl.config import BackupSettings
from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import check_relative_path
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.pod_files import hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.repository import FileEntry, Repository, object_key
from kubecost_etl.transfer.archive import ChunkReader, read_in_pieces
from kubecost_etl.transfer.compression import compress

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
MAX_READ_ATTEMPTS = 3  # a file still changing after this many reads fails the backup


class BackupError(KubecostEtlError, RuntimeError):
    pass


class FileChanged(BackupError):
    """A file's content no longer matched what the plan hashed: it changed while being backed up."""

    def __init__(self, path: str):
        super().__init__(f"{path} changed while it was read")
        self.path = path


class _Progress:
    def __init__(self, total_files: int, total_bytes: int):
        self.total_files, self.total_bytes = total_files, total_bytes
        self.files = self.bytes = 0
        self.started = self._last = time.monotonic()

    def add(self, nbytes: int, file_done: bool = False) -> None:
        self.bytes += nbytes
        self.files += file_done
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            log.info("streamed %d/%d files, %.1f/%.1f MB, %.1f MB/s", self.files, self.total_files,
                     self.bytes / 1e6, self.total_bytes / 1e6, self.rate_mb_s)

    @property
    def rate_mb_s(self) -> float:
        return self.bytes / 1e6 / max(time.monotonic() - self.started, 1e-6)


def stream_files(core_api, target: ExecTarget, repo: Repository, transfer: list[dict],
                 settings: BackupSettings) -> dict:
    """Move the planned files pod -> store, one tar exec per batch; return entries and stats.

    A file whose bytes no longer match the planned hash is re-hashed and read again (it changed
    while we worked); its partial object is aborted, never completed.
    """
    pending = {t["path"]: dict(t) for t in transfer}
    entries: list[FileEntry] = []
    dropped: list[str] = []
    progress = _Progress(len(pending), sum(t["size"] for t in transfer))
    for attempt in range(1, MAX_READ_ATTEMPTS + 1):
        if not pending:
            break
        changed: list[str] = []
        for names in command_batches(_tar_command(target, []), sorted(pending), max_count=settings.batch_files):
            batch = {p: pending[p] for p in names}
            got, changed_here = _stream_batch(core_api, target, repo, batch, settings, progress)
            entries.extend(got)
            changed.extend(changed_here)
            for entry in got:
                pending.pop(entry.path)
        missing = [p for p in pending if p not in changed]
        if missing or changed:
            current = {f.path: f for f in list_files(core_api, target)[0]}
            for path in missing:
                if path not in current:  # deleted since the plan (Kubecost's retention): not an error
                    dropped.append(path)
                    pending.pop(path)
            still = [p for p in pending if p in current]
            if still:
                log.warning("attempt %d: %d file(s) changed while read, reading again: %s",
                            attempt, len(still), still[:5])
                digests = hash_files(core_api, target, still, settings.batch_files)
                for path in still:
                    pending[path].update(size=current[path].size, mtime=current[path].mtime, sha256=digests[path])
    if pending:
        raise BackupError(f"{len(pending)} file(s) kept changing over {MAX_READ_ATTEMPTS} reads: "
                          f"{sorted(pending)[:5]}")
    stats = {"files": len(entries), "bytes": progress.bytes, "stored_bytes": sum(e.stored_size for e in entries),
             "seconds": round(time.monotonic() - progress.started, 3), "mb_per_s": round(progress.rate_mb_s, 1),
             "dropped": dropped}
    log.info("streamed %d files, %.1f MB in %.1f s (%.1f MB/s), stored %.1f MB", stats["files"],
             stats["bytes"] / 1e6, stats["seconds"], stats["mb_per_s"], stats["stored_bytes"] / 1e6)
    return {"entries": [asdict(e) for e in entries], "stats": stats}


def _stream_batch(core_api, target: ExecTarget, repo: Repository, batch: dict[str, dict],
                  settings: BackupSettings, progress: _Progress) -> tuple[list[FileEntry], list[str]]:
    entries, changed = [], []
    with target.exec(core_api, _tar_command(target, list(batch))) as session:
        reader = ChunkReader(session.stdout())
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                for member in archive:
                    path = check_relative_path(member.name.removeprefix("./"))
                    planned = batch.get(path)
                    if planned is None or not member.isreg():
                        raise BackupError(f"unexpected tar member {member.name!r} (type {member.type!r})")
                    try:
                        entries.append(_store_member(repo, archive, member, planned, settings, progress))
                    except FileChanged:
                        changed.append(path)
            reader.drain()
        except ExecError as exc:
            # tar exits non-zero when a file vanished or changed; what arrived intact still counts.
            if exc.exit_code is None:
                raise
            log.warning("tar reported a problem (handled per file): %s", exc)
        except tarfile.ReadError as exc:
            # A cut stream surfaces as a tar error or as a missing exec status; either way, retry later.
            raise ExecError(f"tar stream from {target.pod.name} is broken: {exc}") from exc
    return entries, changed


def _tar_command(target: ExecTarget, paths: list[str]) -> list[str]:
    return ["tar", "cf", "-", "-C", target.etl_root.rstrip("/"), *paths]


def _store_member(repo: Repository, archive: tarfile.TarFile, member: tarfile.TarInfo, planned: dict,
                  settings: BackupSettings, progress: _Progress) -> FileEntry:
    expected = planned["sha256"]
    if member.size != planned["size"]:
        raise FileChanged(planned["path"])  # tarfile skips the member's unread bytes by itself
    key = object_key(expected, settings.compression)
    source = archive.extractfile(member)
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for piece in read_in_pieces(source):
            digest.update(piece)
            progress.add(len(piece))
            yield piece
        if digest.hexdigest() != expected:
            # Raising inside the body makes the store abort the upload: no object under a wrong key.
            raise FileChanged(planned["path"])

    info = repo.store.put(repo.key(key), compress(hashed(), settings.compression, settings.compression_level))
    progress.add(0, file_done=True)
    return FileEntry(planned["path"], member.size, int(member.mtime), expected, key, info.size,
                     settings.compression)
