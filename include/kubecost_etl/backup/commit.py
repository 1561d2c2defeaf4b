"""Committing a snapshot: check every object is stored, then write the manifest (the commit point)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubecost_etl.etl.layout import coverage
from kubecost_etl.snapshots.repository import FileEntry, Manifest, Repository

from .plan import Plan, refuse_empty
from .stream import BackupError, Streamed

log = logging.getLogger(__name__)


def commit_snapshot(
    repo: Repository, plan: Plan, streamed: Streamed | dict, source: dict, hourly_hours: int = 49
) -> Manifest:
    """Write the manifest, the snapshot's only commit point, after checking every object is stored."""
    streamed = Streamed.from_dict(streamed)
    entries = [FileEntry(**e) for e in plan.reuse] + list(streamed.entries)
    entries.sort(key=lambda e: e.path)
    if not entries:  # a plan is refused earlier; this keeps an empty manifest from ever being written
        refuse_empty(plan.cluster_id, f"read from {source.get('pod', 'the pod')}")
    stored = repo.object_sizes()
    missing = [e.object for e in entries if stored.get(e.object) != e.stored_size]
    if missing:
        raise BackupError(
            f"{len(missing)} object(s) missing or of the wrong size, not committing: {missing[:5]}"
        )
    stats = streamed.stats.as_dict()
    stats.update(
        reused_files=len(plan.reuse),
        total_files=len(entries),
        total_bytes=sum(e.size for e in entries),
        transferred_bytes=stats.pop("bytes"),
        transferred_files=stats.pop("files"),
        uploaded_bytes=stats.pop("stored_bytes"),
        stored_bytes=sum({e.object: e.stored_size for e in entries}.values()),
    )
    manifest = Manifest(
        snapshot_id=plan.snapshot_id,
        cluster_id=plan.cluster_id,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        files=entries,
        source=source,
        base_snapshot=plan.base_snapshot,
        stats=stats,
        coverage={k: v.as_dict() for k, v in coverage([e.path for e in entries], hourly_hours).items()},
    )
    repo.commit(manifest)
    log.info(
        "committed snapshot %s of %s: %d files, %.1f MB",
        manifest.snapshot_id,
        repo.cluster_id,
        len(entries),
        manifest.total_bytes / 1e6,
    )
    return manifest
