"""Incremental, verified backups of the ETL cache: plan, stream, commit, verify.

Each stage is a plain function whose inputs and outputs are JSON-friendly, so an orchestrator can
run them as separate tasks (the data itself never passes between stages: it flows pod -> store).
"""

from __future__ import annotations

import hashlib
import logging
import random
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from . import bingen
from .archive import ChunkReader, read_in_pieces
from .compression import compress, decompress
from .config import BackupSettings
from .etl_layout import check_relative_path, coverage, is_bingen_path
from .kube.exec import ExecError, command_batches
from .kube.target import ExecTarget
from .pod_files import hash_files, list_files
from .snapshots import FileEntry, Manifest, Repository, new_snapshot_id, object_key

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
MAX_READ_ATTEMPTS = 3  # a file still changing after this many reads fails the backup


class BackupError(RuntimeError):
    pass


class FileChanged(BackupError):
    """A file's content no longer matched what the plan hashed: it changed while being backed up."""

    def __init__(self, path: str):
        super().__init__(f"{path} changed while it was read")
        self.path = path


@dataclass
class Plan:
    """What a snapshot needs: entries reused as they are, and files to transfer (with their hash)."""

    snapshot_id: str
    cluster_id: str
    base_snapshot: str | None
    reuse: list[dict]  # FileEntry dicts: unchanged since the base, or content already stored
    transfer: list[dict]  # {path, size, mtime, sha256}
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(**data)

    def summary(self) -> dict:
        return {
            "snapshot_id": self.snapshot_id, "base_snapshot": self.base_snapshot,
            "files": len(self.reuse) + len(self.transfer), "reused_files": len(self.reuse),
            "transfer_files": len(self.transfer), "transfer_bytes": sum(t["size"] for t in self.transfer),
            "refused": len(self.refused),
        }


def plan_backup(core_api, target: ExecTarget, repo: Repository, settings: BackupSettings) -> Plan:
    files, refused = list_files(core_api, target)
    for reason in refused:
        log.warning("skipping: %s", reason)
    base_id = repo.latest_good()
    base = {e.path: e for e in repo.load_manifest(base_id).files} if base_id else {}
    reuse, changed = [], []
    for f in files:
        previous = base.get(f.path)
        if (previous and previous.size == f.size and previous.mtime == f.mtime
                and previous.compression == settings.compression):
            reuse.append(asdict(previous))
        else:
            changed.append(f)
    digests = hash_files(core_api, target, [f.path for f in changed], settings.batch_files) if changed else {}
    stored = repo.object_sizes() if changed else {}
    transfer = []
    for f in changed:
        digest = digests[f.path]
        key = object_key(digest, settings.compression)
        if key in stored:  # same content is already in the repository (e.g. a file touched, not changed)
            reuse.append(asdict(FileEntry(f.path, f.size, f.mtime, digest, key, stored[key], settings.compression)))
        else:
            transfer.append({"path": f.path, "size": f.size, "mtime": f.mtime, "sha256": digest})
    plan = Plan(new_snapshot_id(), repo.cluster_id, base_id, reuse, transfer, refused)
    log.info("plan for %s: %s", repo.cluster_id, plan.summary())
    return plan


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


def commit_snapshot(repo: Repository, plan: Plan, streamed: dict, source: dict,
                    hourly_hours: int = 49) -> Manifest:
    """Write the manifest, the snapshot's only commit point, after checking every object is stored."""
    entries = [FileEntry(**e) for e in plan.reuse] + [FileEntry(**e) for e in streamed["entries"]]
    entries.sort(key=lambda e: e.path)
    stored = repo.object_sizes()
    missing = [e.object for e in entries if stored.get(e.object) != e.stored_size]
    if missing:
        raise BackupError(f"{len(missing)} object(s) missing or of the wrong size, not committing: {missing[:5]}")
    stats = dict(streamed["stats"])
    stats.update(reused_files=len(plan.reuse), total_files=len(entries),
                 total_bytes=sum(e.size for e in entries), transferred_bytes=stats.pop("bytes"),
                 transferred_files=stats.pop("files"), uploaded_bytes=stats.pop("stored_bytes"),
                 stored_bytes=sum({e.object: e.stored_size for e in entries}.values()))
    manifest = Manifest(
        snapshot_id=plan.snapshot_id, cluster_id=plan.cluster_id,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), files=entries, source=source,
        base_snapshot=plan.base_snapshot, stats=stats,
        coverage={k: v.as_dict() for k, v in coverage([e.path for e in entries], hourly_hours).items()},
    )
    repo.commit(manifest)
    log.info("committed snapshot %s of %s: %d files, %.1f MB", manifest.snapshot_id, repo.cluster_id,
             len(entries), manifest.total_bytes / 1e6)
    return manifest


def back_up(core_api, target: ExecTarget, repo: Repository, settings: BackupSettings, source: dict,
            full_verify: bool = False, hourly_hours: int = 49) -> tuple[Manifest, dict]:
    """All four stages in one call: the committed manifest and its verification report."""
    plan = plan_backup(core_api, target, repo, settings)
    streamed = stream_files(core_api, target, repo, plan.transfer, settings)
    manifest = commit_snapshot(repo, plan, streamed, source, hourly_hours)
    return manifest, verify_snapshot(repo, manifest.snapshot_id, settings.verify_sample, full_verify)


def verify_snapshot(repo: Repository, snapshot_id: str, sample: int = 16, full: bool = False) -> dict:
    """Check a committed snapshot and record the result; only a passing one becomes "latest good".

    ``integrity_ok`` says the stored copy matches what was read from the pod; ``damaged`` lists set
    files whose bingen header is broken (damage in the source itself). ``ok`` needs both clean.
    """
    manifest = repo.load_manifest(snapshot_id)
    stored = repo.object_sizes()
    problems = [f"{e.path}: object {e.object} " + ("missing" if e.object not in stored else
                f"is {stored[e.object]} bytes, manifest says {e.stored_size}")
                for e in manifest.files if stored.get(e.object) != e.stored_size]
    unique = sorted({e.object: e for e in manifest.files}.values(), key=lambda e: e.object)
    # A different pseudo-random sample each snapshot, so over time every object gets re-read.
    chosen = unique if full else random.Random(snapshot_id).sample(unique, min(sample, len(unique)))
    damaged: list[dict] = []
    for entry in chosen:
        if entry.object in stored:
            problem, header = _check_object(repo, entry)
            problems.extend(problem)
            if header:
                damaged.append({"path": entry.path, "reason": header})
    report = {
        "snapshot_id": snapshot_id, "ok": not problems and not damaged, "integrity_ok": not problems,
        "checked_at": datetime.now(UTC).isoformat(),
        "objects": len(unique), "objects_present": len(unique) - sum(e.object not in stored for e in unique),
        "rehashed": len(chosen), "full": full, "problems": problems[:100], "damaged": damaged[:100],
        "coverage": manifest.coverage,
    }
    repo.record_verification(snapshot_id, report)
    return report


def _check_object(repo: Repository, entry: FileEntry) -> tuple[list[str], str | None]:
    """Integrity problems of one stored object, and its bingen header problem if any."""
    digest, size, head = hashlib.sha256(), 0, bytearray()
    try:
        for piece in decompress(repo.store.open_read(repo.key(entry.object)), entry.compression):
            digest.update(piece)
            size += len(piece)
            if len(head) < bingen.HEADER_PROBE_BYTES:
                head += piece[:bingen.HEADER_PROBE_BYTES - len(head)]
    except Exception as exc:  # any decode/read failure is a verification finding, not a crash
        return [f"{entry.path}: object {entry.object} cannot be read back: {exc}"], None
    if size != entry.size or digest.hexdigest() != entry.sha256:
        return [f"{entry.path}: object {entry.object} content does not match its sha256/size"], None
    if is_bingen_path(entry.path):
        check = bingen.check_header(bytes(head), entry.size)
        if not check.ok:
            return [], f"bingen header check failed: {check.reason}"
    return [], None
