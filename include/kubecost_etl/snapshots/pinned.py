"""Choosing the snapshot to restore, pinning its manifest, and refusing anything unsafe in it.

A manifest is input from a bucket, so it is checked as untrusted: every path must pass the
allow-list, every object key must be the one its sha256 and compression imply (so an entry
cannot point at another object), and no path may be both a file and a directory. The manifest's
own sha256 is recorded once and re-checked by every later stage, so the snapshot that was
verified is the one that is written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from kubecost_etl.errors import Refusal
from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.snapshots.repository import FileEntry, Manifest, Repository, object_key
from kubecost_etl.snapshots.verify import verify_snapshot
from kubecost_etl.storage.base import ObjectNotFound
from kubecost_etl.transfer.compression import SUFFIX
from kubecost_etl.transfer.tar_stream import parent_directories

LATEST = "latest"
_SNAPSHOT_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PROBLEMS_SHOWN = 10


class RestoreRefused(Refusal, ValueError):
    """The restore must not go ahead; raised before anything in the pod is touched."""


@dataclass(frozen=True)
class PinnedManifest:
    manifest: Manifest
    sha256: str  # of the manifest.json bytes

    @property
    def files(self) -> list[FileEntry]:
        return self.manifest.files


def check_snapshot_id(snapshot_id: str) -> str:
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.match(snapshot_id) or ".." in snapshot_id:
        raise RestoreRefused(f"{snapshot_id!r} is not a snapshot id (letters, digits, '.', '_', '-')")
    return snapshot_id


def resolve_snapshot(repo: Repository, requested: str, created_before: datetime) -> str:
    """The snapshot id to restore; ``latest`` is the newest verified one made before ``created_before``.

    The cut-off keeps ``latest`` stable for the whole run: the safety backup this run takes is
    newer and verified, and must never become the thing restored if a stage is run again.
    """
    if requested == LATEST:
        snapshot_id = repo.latest_good(created_before)
        if snapshot_id:
            return snapshot_id
        raise RestoreRefused(
            f"no verified snapshot of cluster {repo.cluster_id!r} made before "
            f"{created_before:%Y-%m-%dT%H:%M:%SZ} in {repo.description}"
        )
    snapshot_id = check_snapshot_id(requested)
    if snapshot_id not in repo.snapshot_ids():
        raise RestoreRefused(
            f"snapshot {snapshot_id!r} of cluster {repo.cluster_id!r} does not exist "
            f"(no manifest) in {repo.description}"
        )
    return snapshot_id


def load_pinned(repo: Repository, snapshot_id: str, expected_sha256: str | None = None) -> PinnedManifest:
    """Read and check the manifest; with ``expected_sha256``, refuse one that changed since it was pinned."""
    check_snapshot_id(snapshot_id)
    try:
        raw = repo.store.read_bytes(repo.manifest_key(snapshot_id))
    except ObjectNotFound:
        raise RestoreRefused(
            f"snapshot {snapshot_id!r} of cluster {repo.cluster_id!r} has no manifest in {repo.description}"
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise RestoreRefused(
            f"the manifest of snapshot {snapshot_id!r} changed since this restore pinned it "
            f"(sha256 {expected_sha256[:12]}.. now {digest[:12]}..)"
        )
    try:
        manifest = Manifest.from_json(raw)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed JSON or fields
        raise RestoreRefused(f"the manifest of snapshot {snapshot_id!r} is not readable: {exc}") from None
    problems = manifest_problems(manifest, repo.cluster_id, snapshot_id)
    if problems:
        raise RestoreRefused(
            f"the manifest of snapshot {snapshot_id!r} is refused ({len(problems)} problem(s)): "
            + "; ".join(problems[:_PROBLEMS_SHOWN])
        )
    return PinnedManifest(manifest, digest)


def manifest_problems(manifest: Manifest, cluster_id: str, snapshot_id: str) -> list[str]:
    problems = []
    if manifest.snapshot_id != snapshot_id or manifest.cluster_id != cluster_id:
        problems.append(f"it names snapshot {manifest.snapshot_id!r} of cluster {manifest.cluster_id!r}")
    if not manifest.files:
        problems.append("it lists no files (restoring it would empty the ETL dir)")
    paths: set[str] = set()
    for entry in manifest.files:
        problems.extend(_entry_problems(entry))
        if entry.path in paths:
            problems.append(f"{entry.path!r} is listed twice")
        paths.add(entry.path)
    for path in sorted(paths):
        clash = next((d for d in parent_directories([path]) if d in paths), None)
        if clash:
            problems.append(f"{clash!r} is listed as a file but {path!r} needs it as a directory")
    return problems


def _entry_problems(entry: FileEntry) -> list[str]:
    try:
        check_relative_path(entry.path)
    except (UnsafePathError, AttributeError, TypeError) as exc:
        return [str(exc)]
    problems = []
    for name in ("size", "mtime", "stored_size"):
        value = getattr(entry, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{entry.path}: {name} {value!r} is not a whole number >= 0")
    if not isinstance(entry.sha256, str) or not _SHA256.match(entry.sha256):
        problems.append(f"{entry.path}: sha256 {entry.sha256!r} is not 64 lowercase hex digits")
    elif entry.compression not in SUFFIX:
        problems.append(f"{entry.path}: unknown compression {entry.compression!r}")
    elif entry.object != object_key(entry.sha256, entry.compression):
        problems.append(f"{entry.path}: object {entry.object!r} is not the key its sha256 names")
    return problems


def verify_pinned(repo: Repository, pinned: PinnedManifest) -> dict:
    """Download and re-hash every object of the pinned snapshot; refuse the restore on any problem."""
    snapshot_id = pinned.manifest.snapshot_id
    report = verify_snapshot(repo, snapshot_id, full=True)
    load_pinned(repo, snapshot_id, pinned.sha256)  # what was verified is still what is pinned
    if not report["ok"]:
        # Damaged set files are refused too: restoring them would hand Kubecost broken data again.
        findings = report["problems"] + [
            f"{d['path']}: damaged in the source, {d['reason']}" for d in report["damaged"]
        ]
        raise RestoreRefused(
            f"snapshot {snapshot_id!r} failed verification ({len(findings)} finding(s)), "
            "nothing was restored: " + "; ".join(findings[:_PROBLEMS_SHOWN])
        )
    return {
        "snapshot_id": snapshot_id,
        "objects": report["objects"],
        "rehashed": report["rehashed"],
        "files": len(pinned.files),
        "bytes": pinned.manifest.total_bytes,
    }


def describe(pinned: PinnedManifest) -> str:
    m = pinned.manifest
    return (
        f"snapshot {m.snapshot_id} of {m.cluster_id} made {m.created_at}: {len(m.files)} files, "
        f"{m.total_bytes / 1e6:.1f} MB, manifest sha256 {pinned.sha256[:12]}.."
    )
