"""Incremental, verified backups of the ETL cache: plan, stream, commit, verify in one call.

Each stage is a plain function whose inputs and outputs are JSON-friendly, so an orchestrator can
run them as separate tasks (the data itself never passes between stages: it flows pod -> store).
"""

from __future__ import annotations

from kubecost_etl.config import BackupSettings
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.repository import Manifest, Repository
from kubecost_etl.snapshots.verify import verify_snapshot

from .commit import commit_snapshot
from .plan import plan_backup
from .stream import stream_files


def back_up(
    core_api,
    target: ExecTarget,
    repo: Repository,
    settings: BackupSettings,
    source: dict,
    full_verify: bool = False,
    hourly_hours: int = 49,
) -> tuple[Manifest, dict]:
    """All four stages in one call: the committed manifest and its verification report."""
    plan = plan_backup(core_api, target, repo, settings)
    streamed = stream_files(core_api, target, repo, plan.transfer, settings)
    manifest = commit_snapshot(repo, plan, streamed, source, hourly_hours)
    return manifest, verify_snapshot(repo, manifest.snapshot_id, settings.verify_sample, full_verify)
