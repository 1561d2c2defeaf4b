"""Verifying a committed snapshot: every object present with its size, a rotating sample (or all)
re-downloaded, decompressed and re-hashed, bingen headers checked; the verdict is recorded."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

from kubecost_etl.etl import bingen
from kubecost_etl.etl.layout import is_bingen_path
from kubecost_etl.transfer.compression import decompress

from .repository import FileEntry, Repository


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
