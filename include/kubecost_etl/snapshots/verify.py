"""Verifying a committed snapshot: every object present, a rotating sample (or all) re-downloaded,
decompressed and re-hashed, bingen headers checked; the verdict is recorded.

Only content marks a snapshot bad: an object missing, or whose bytes do not decompress to the
manifest's sha256 and size (an object whose stored size differs from the manifest's is always
re-read: it may have been written again, mended, with other compression settings). Objects found bad
are put in quarantine (see ``Repository.quarantined``). A failure to *read* (a 500, a cut
connection) says nothing about the content: the read is retried, and if it keeps failing
``VerifyReadError`` (transient) is raised before any verdict is written, so a good snapshot never
drops out of "latest" for it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from kubecost_etl.errors import Refusal, TransientError
from kubecost_etl.etl import bingen
from kubecost_etl.etl.layout import is_bingen_path
from kubecost_etl.storage.base import ObjectNotFound
from kubecost_etl.transfer.compression import decompress
from kubecost_etl.transfer.concurrent import prefetch

from .repository import FileEntry, Repository

log = logging.getLogger(__name__)
READ_ATTEMPTS = 3
READ_WORKERS = 4  # objects read back concurrently (the stream's upload workers are 4 too)
READ_AHEAD_CHUNKS = 4  # per object, about 1 MB each
READ_PAUSE_S = 1.0  # between read attempts (times the attempt number); the store's own client retries too


class VerifyReadError(TransientError):
    """An object could not be read back (not a content problem); nothing was recorded."""


class SnapshotDamaged(Refusal, RuntimeError):
    """The verdict is recorded and says the snapshot is damaged (an object missing or of the wrong
    content, or set files broken in the pod itself). Reading the same bytes again says the same: no retry,
    one alert; the snapshot never becomes "latest good"."""


class _ReadFailed(Exception):
    pass


@dataclass(frozen=True)
class VerificationReport:
    """A snapshot's verdict, as ``verify_snapshot`` records it (``verification.json``; ``as_dict``
    is that form).
    """

    snapshot_id: str
    ok: bool  # integrity_ok and nothing damaged
    integrity_ok: bool  # the stored copy matches what was read from the source
    checked_at: str
    objects: int
    objects_present: int
    rehashed: int
    full: bool
    problems: tuple[str, ...]  # content problems in the store (the first 100)
    damaged: tuple[dict, ...]  # {path, reason}: set files whose bingen header is broken at the source
    coverage: dict  # per store, from the manifest
    quarantined: tuple[str, ...] = ()  # objects found missing or wrong: no later snapshot reuses them
    released: tuple[str, ...] = ()  # objects in quarantine, re-read and found right

    def as_dict(self) -> dict:
        return {
            "snapshot_id": self.snapshot_id,
            "ok": self.ok,
            "integrity_ok": self.integrity_ok,
            "checked_at": self.checked_at,
            "objects": self.objects,
            "objects_present": self.objects_present,
            "rehashed": self.rehashed,
            "full": self.full,
            "problems": list(self.problems),
            "damaged": [dict(d) for d in self.damaged],
            "coverage": self.coverage,
            "quarantined": list(self.quarantined),
            "released": list(self.released),
        }

    @classmethod
    def from_dict(cls, data: dict | VerificationReport) -> VerificationReport:
        if isinstance(data, VerificationReport):
            return data
        return cls(
            data["snapshot_id"],
            data["ok"],
            data["integrity_ok"],
            data["checked_at"],
            data["objects"],
            data["objects_present"],
            data["rehashed"],
            data["full"],
            tuple(data["problems"]),
            tuple(data["damaged"]),
            data["coverage"],
            tuple(data.get("quarantined", ())),  # verdicts recorded before quarantine existed lack them
            tuple(data.get("released", ())),
        )


def verify_snapshot(repo: Repository, snapshot_id: str, sample: int = 16, full: bool = False) -> dict:
    """Check a committed snapshot and record the result; only a passing one becomes "latest good".

    ``integrity_ok`` says the stored copy matches what was read from the pod; ``damaged`` lists set
    files whose bingen header is broken (damage in the source itself). ``ok`` needs both clean.
    Besides the sample, every object in quarantine and every object whose size is not the manifest's is
    re-read: content decides. An object found missing or wrong is put in quarantine (before the verdict
    is recorded), so no later snapshot reuses it; one re-read and found right is released.
    Returns the recorded document (``VerificationReport.from_dict`` reads it typed).
    """
    manifest = repo.load_manifest(snapshot_id)
    stored = repo.object_sizes()
    quarantined = repo.quarantined()
    problems = [f"{e.path}: object {e.object} missing" for e in manifest.files if e.object not in stored]
    unique = sorted({e.object: e for e in manifest.files}.values(), key=lambda e: e.object)
    # A different pseudo-random sample each snapshot, so over time every object gets re-read.
    chosen = unique if full else random.Random(snapshot_id).sample(unique, min(sample, len(unique)))
    # Content decides, not the size: an object may have been written again since (its quarantine lifted
    # that way) with other compression settings.
    resized = {e.object for e in unique if e.object in stored and stored[e.object] != e.stored_size}
    must_read = (resized | quarantined) - {e.object for e in chosen}
    chosen = chosen + [e for e in unique if e.object in must_read]
    damaged: list[dict] = []
    present = [e for e in chosen if e.object in stored]
    # A few objects read back at once (each streamed in chunks: memory stays at a few chunks): a
    # sample of small objects costs about one round trip per worker instead of one per object.
    with ThreadPoolExecutor(max_workers=max(1, min(READ_WORKERS, len(present)))) as pool:
        checked = list(pool.map(lambda e: _check_with_retries(repo, e), present))
    bad = {e.object: f"missing (named by {e.path})" for e in unique if e.object not in stored}
    for entry, (problem, header) in zip(present, checked, strict=True):
        problems.extend(problem)
        if problem:
            bad[entry.object] = problem[0]
        elif entry.object in resized:
            log.info(
                "%s is %d bytes where the manifest says %d; its content is right (written again since)",
                entry.object,
                stored[entry.object],
                entry.stored_size,
            )
        if header:
            damaged.append({"path": entry.path, "reason": header})
    for key, finding in sorted(bad.items()):
        repo.quarantine(key, finding, snapshot_id)
    released = sorted((quarantined & {e.object for e in present}) - set(bad))
    repo.release(released)
    if bad or released:
        log.warning(
            "%d object(s) put in quarantine (the next backup writes them again): %s; %d released: %s",
            len(bad),
            sorted(bad)[:5],
            len(released),
            released[:5],
        )
    report = VerificationReport(
        snapshot_id=snapshot_id,
        ok=not problems and not damaged,
        integrity_ok=not problems,
        checked_at=datetime.now(UTC).isoformat(),
        objects=len(unique),
        objects_present=len(unique) - sum(e.object not in stored for e in unique),
        rehashed=len(chosen),
        full=full,
        problems=tuple(problems[:100]),
        damaged=tuple(damaged[:100]),
        coverage=manifest.coverage,
        quarantined=tuple(sorted(bad)[:100]),
        released=tuple(released[:100]),
    ).as_dict()
    repo.record_verification(snapshot_id, report)
    return report


def _check_with_retries(repo: Repository, entry: FileEntry) -> tuple[list[str], str | None]:
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return _check_object(repo, entry)
        except _ReadFailed as exc:
            if attempt == READ_ATTEMPTS:
                raise VerifyReadError(
                    f"object {entry.object} ({entry.path}) could not be read back after "
                    f"{attempt} attempts: {exc.__cause__}; no verdict recorded"
                ) from exc.__cause__
            log.warning(
                "reading %s back failed (attempt %d of %d): %s; again",
                entry.object,
                attempt,
                READ_ATTEMPTS,
                exc.__cause__,
            )
            time.sleep(READ_PAUSE_S * attempt)  # the store may recover; not test timing
    raise AssertionError("unreachable")


def _read(repo: Repository, entry: FileEntry) -> Iterator[bytes]:
    """The stored bytes; a failure to read them (not a missing object) becomes ``_ReadFailed``."""
    try:
        source = iter(repo.store.open_read(repo.key(entry.object)))
        while True:
            try:
                chunk = next(source)
            except StopIteration:
                return
            yield chunk
    except ObjectNotFound:
        raise
    except GeneratorExit:
        raise
    except Exception as exc:
        raise _ReadFailed(str(exc)) from exc


def _check_object(repo: Repository, entry: FileEntry) -> tuple[list[str], str | None]:
    """Integrity problems of one stored object, and its bingen header problem if any."""
    digest, size, head = hashlib.sha256(), 0, bytearray()
    try:
        # downloaded in a thread a few chunks ahead while the previous ones are decompressed and hashed
        for piece in decompress(
            prefetch(_read(repo, entry), READ_AHEAD_CHUNKS, "verify-read"), entry.compression
        ):
            digest.update(piece)
            size += len(piece)
            if len(head) < bingen.HEADER_PROBE_BYTES:
                head += piece[: bingen.HEADER_PROBE_BYTES - len(head)]
    except _ReadFailed:
        raise
    except ObjectNotFound:
        return [f"{entry.path}: object {entry.object} missing when read back"], None
    except Exception as exc:  # the bytes arrived but do not decode: the content is bad
        return [f"{entry.path}: object {entry.object} does not decompress: {exc}"], None
    if size != entry.size or digest.hexdigest() != entry.sha256:
        return [f"{entry.path}: object {entry.object} content does not match its sha256/size"], None
    if is_bingen_path(entry.path):
        check = bingen.check_header(bytes(head), entry.size)
        if not check.ok:
            return [], f"bingen header check failed: {check.reason}"
    return [], None
