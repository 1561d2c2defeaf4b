"""Streaming planned files pod -> store: one tar exec per batch, each member hashed, compressed and
uploaded as it arrives, in bounded memory. A file whose bytes no longer match the plan's hash is
read again; its partial upload is aborted, never completed.

The work overlaps, with bounded queues between the stages: a thread reads exec frames ahead of the
tar parser; the reader hashes each member and feeds its pieces to one of ``UPLOAD_WORKERS`` upload
workers, which compress (zstd; large files with zstd's own 2 threads) and upload (a single PUT
below the part size, else parts, one in flight while the next is compressed). So several small
files are in flight at once, and a large one keeps both cores busy.

A retried stream (a killed worker, a cut stream) first lists what is stored: an object is only
visible once complete and its key is its content's hash, so a stored one is reused, not sent again."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import time
from dataclasses import asdict, dataclass
from functools import partial

from kubecost_etl.config import BackupSettings
from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import check_relative_path
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.pod_files import hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.repository import FileEntry, Repository, object_key
from kubecost_etl.transfer.archive import ChunkReader, read_in_pieces
from kubecost_etl.transfer.compression import compress
from kubecost_etl.transfer.concurrent import FileFeed, UploadPool, prefetch

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
MAX_READ_ATTEMPTS = 3  # a file still changing after this many reads fails the backup
UPLOAD_WORKERS = 4  # files compressed and uploaded at once (and at most this many store connections)
FEED_PIECES = 4  # pieces (1 MiB) queued per file between the reader and its upload worker
PREFETCH_FRAMES = 16  # exec frames read ahead of the tar parser
ZSTD_THREADS = 2  # zstd's own worker threads, for files of at least ZSTD_THREADS_FROM bytes
ZSTD_THREADS_FROM = 8 << 20


class BackupError(KubecostEtlError, RuntimeError):
    pass


class FileChanged(BackupError):
    """A file's content no longer matched what the plan hashed: it changed while being backed up."""

    def __init__(self, path: str):
        super().__init__(f"{path} changed while it was read")
        self.path = path


@dataclass(frozen=True)
class StreamStats:
    """What a stream moved (recorded in the manifest's stats by commit). Fields left None are not recorded:
    a federated copy has no ``reused_stored_files``, an import only counts files and bytes."""

    files: int
    bytes: int  # read from the source
    stored_bytes: int  # written to the store (compressed)
    reused_stored_files: int | None = None  # stored by an earlier try (pod streams only)
    seconds: float | None = None
    mb_per_s: float | None = None
    dropped: tuple[str, ...] | None = (
        None  # planned files deleted at the source meanwhile (Kubecost's retention)
    )

    def as_dict(self) -> dict:
        recorded = {
            "files": self.files,
            "bytes": self.bytes,
            "stored_bytes": self.stored_bytes,
            "reused_stored_files": self.reused_stored_files,
            "seconds": self.seconds,
            "mb_per_s": self.mb_per_s,
            "dropped": None if self.dropped is None else list(self.dropped),
        }
        return {key: value for key, value in recorded.items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict) -> StreamStats:
        dropped = data.get("dropped")
        return cls(
            data["files"],
            data["bytes"],
            data["stored_bytes"],
            data.get("reused_stored_files"),
            data.get("seconds"),
            data.get("mb_per_s"),
            None if dropped is None else tuple(dropped),
        )


@dataclass(frozen=True)
class Streamed:
    """A stream's result: the entries of the files it stored (or found stored), and its stats."""

    entries: tuple[FileEntry, ...]
    stats: StreamStats

    def as_dict(self) -> dict:
        return {"entries": [asdict(e) for e in self.entries], "stats": self.stats.as_dict()}

    @classmethod
    def from_dict(cls, data: dict | Streamed) -> Streamed:
        if isinstance(data, Streamed):
            return data
        return cls(tuple(FileEntry(**e) for e in data["entries"]), StreamStats.from_dict(data["stats"]))


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
            log.info(
                "streamed %d/%d files, %.1f/%.1f MB, %.1f MB/s",
                self.files,
                self.total_files,
                self.bytes / 1e6,
                self.total_bytes / 1e6,
                self.rate_mb_s,
            )

    @property
    def rate_mb_s(self) -> float:
        return self.bytes / 1e6 / max(time.monotonic() - self.started, 1e-6)


def stream_files(
    core_api, target: ExecTarget, repo: Repository, transfer: list[dict], settings: BackupSettings
) -> Streamed:
    """Move the planned files pod -> store, one tar exec per batch; return entries and stats.

    A file whose bytes no longer match the planned hash is re-hashed and read again (it changed
    while we worked); its partial object is aborted, never completed.
    """
    pending = {t["path"]: dict(t) for t in transfer}
    entries = _already_stored(repo, pending, settings)
    reused = len(entries)
    dropped: list[str] = []
    progress = _Progress(len(pending), sum(t["size"] for t in pending.values()))
    for attempt in range(1, MAX_READ_ATTEMPTS + 1):
        if not pending:
            break
        changed: list[str] = []
        for names in command_batches(
            _tar_command(target, []), sorted(pending), max_count=settings.batch_files
        ):
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
                log.warning(
                    "attempt %d: %d file(s) changed while read, reading again: %s",
                    attempt,
                    len(still),
                    still[:5],
                )
                digests = hash_files(core_api, target, still, settings.batch_files)
                for path in still:
                    pending[path].update(
                        size=current[path].size, mtime=current[path].mtime, sha256=digests[path]
                    )
    if pending:
        raise BackupError(
            f"{len(pending)} file(s) kept changing over {MAX_READ_ATTEMPTS} reads: {sorted(pending)[:5]}"
        )
    uploaded = entries[reused:]
    stats = StreamStats(
        files=len(entries),
        bytes=progress.bytes,
        stored_bytes=sum(e.stored_size for e in uploaded),
        seconds=round(time.monotonic() - progress.started, 3),
        mb_per_s=round(progress.rate_mb_s, 1),
        dropped=tuple(dropped),
        reused_stored_files=reused,
    )
    log.info(
        "streamed %d files, %.1f MB in %.1f s (%.1f MB/s), stored %.1f MB; %d already stored",
        stats.files,
        stats.bytes / 1e6,
        stats.seconds,
        stats.mb_per_s,
        stats.stored_bytes / 1e6,
        reused,
    )
    return Streamed(tuple(entries), stats)


def _already_stored(repo: Repository, pending: dict[str, dict], settings: BackupSettings) -> list[FileEntry]:
    """Entries for planned files whose object is stored already (an earlier try of this stream got that
    far), removed from ``pending``. Objects become visible only once complete, under their content's
    hash: a stored, non-empty one is that content, unless a verify put it in quarantine (then it is
    sent again). Commit checks every object's size again."""
    if not pending:
        return []
    stored = repo.reusable_objects()
    entries = []
    for path, planned in list(pending.items()):
        key = object_key(planned["sha256"], settings.compression)
        if stored.get(key):
            entries.append(
                FileEntry(
                    path,
                    planned["size"],
                    planned["mtime"],
                    planned["sha256"],
                    key,
                    stored[key],
                    settings.compression,
                )
            )
            del pending[path]
    if entries:
        log.info(
            "%d of %d planned file(s) already stored (an earlier try): reused, not sent again",
            len(entries),
            len(entries) + len(pending),
        )
    return entries


def _stream_batch(
    core_api,
    target: ExecTarget,
    repo: Repository,
    batch: dict[str, dict],
    settings: BackupSettings,
    progress: _Progress,
) -> tuple[list[FileEntry], list[str]]:
    changed: list[str] = []
    started: list[tuple[dict, tarfile.TarInfo, FileFeed]] = []
    with (
        target.exec(core_api, _tar_command(target, list(batch))) as session,
        UploadPool(UPLOAD_WORKERS, FEED_PIECES) as uploads,
    ):
        frames = prefetch(session.stdout(), PREFETCH_FRAMES, name=f"exec-{target.pod.name}")
        reader = ChunkReader(frames)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                for member in archive:
                    path = check_relative_path(member.name.removeprefix("./"))
                    planned = batch.get(path)
                    if planned is None or not member.isreg():
                        raise BackupError(f"unexpected tar member {member.name!r} (type {member.type!r})")
                    if member.size != planned["size"]:
                        changed.append(path)  # tarfile skips the member's unread bytes by itself
                        continue
                    feed = uploads.start(partial(_upload, repo, planned, settings))
                    started.append((planned, member, feed))
                    _read_member(archive, member, planned, feed, progress)
            reader.drain()
        except ExecError as exc:
            # tar exits non-zero when a file vanished or changed; what arrived intact still counts.
            if exc.exit_code is None:
                raise
            log.warning("tar reported a problem (handled per file): %s", exc)
        except tarfile.ReadError as exc:
            # A cut stream surfaces as a tar error or as a missing exec status; either way, retry later.
            raise ExecError(f"tar stream from {target.pod.name} is broken: {exc}") from exc
        finally:
            frames.close()
    entries = []
    for planned, member, feed in started:  # every upload has ended: the pool waited for them
        try:
            info = feed.future.result()
        except FileChanged:
            changed.append(planned["path"])
            continue
        progress.add(0, file_done=True)
        entries.append(
            FileEntry(
                planned["path"],
                member.size,
                int(member.mtime),
                planned["sha256"],
                object_key(planned["sha256"], settings.compression),
                info.size,
                settings.compression,
            )
        )
    return entries, changed


def _tar_command(target: ExecTarget, paths: list[str]) -> list[str]:
    return ["tar", "cf", "-", "-C", target.etl_root.rstrip("/"), *paths]


def _read_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, planned: dict, feed: FileFeed, progress: _Progress
) -> None:
    """Hash the member's bytes as they are handed to its upload; a wrong hash aborts the upload."""
    digest = hashlib.sha256()
    try:
        for piece in read_in_pieces(archive.extractfile(member)):
            digest.update(piece)
            progress.add(len(piece))
            feed.put(piece)
    except BaseException as exc:
        if not feed.ended and not feed.future.done():
            try:
                feed.end(exc)  # the upload is aborted, never completed under this key
            except Exception:  # the upload failed meanwhile: nothing left to abort
                pass
        raise
    # Raising inside the upload's input makes the store abort it: no object under a wrong key.
    feed.end(None if digest.hexdigest() == planned["sha256"] else FileChanged(planned["path"]))


def _upload(repo: Repository, planned: dict, settings: BackupSettings, feed: FileFeed):
    threads = ZSTD_THREADS if planned["size"] >= ZSTD_THREADS_FROM else 0
    key = object_key(planned["sha256"], settings.compression)
    return repo.store.put(
        repo.key(key), compress(feed.pieces(), settings.compression, settings.compression_level, threads)
    )
