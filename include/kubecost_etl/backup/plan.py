"""Planning a backup: list the pod's files, reuse what the last verified snapshot already holds,
hash the rest in the pod, and skip content already stored. An object in quarantine (a verify found
it missing or wrong) is never reused: its file is hashed and sent again, which mends the object."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from kubecost_etl.config import BackupSettings
from kubecost_etl.errors import Refusal
from kubecost_etl.kube.pod_files import hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.repository import FileEntry, Repository, new_snapshot_id, object_key

log = logging.getLogger(__name__)


class EmptyEtlDir(Refusal):
    """The pod's ETL dir holds no files: an empty snapshot must never become "latest good"."""


def refuse_empty(cluster_id: str, where: str) -> None:
    raise EmptyEtlDir(
        f"cluster {cluster_id!r}: the ETL dir {where} holds no files, so there is nothing to back up and no "
        "snapshot was written (an empty one would become the latest good snapshot). Either Kubecost has not "
        "built its ETL yet, or the cache was lost: restore a snapshot (kubecost_etl_restore), or repair "
        "with backup_first: false"
    )


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
            "snapshot_id": self.snapshot_id,
            "base_snapshot": self.base_snapshot,
            "files": len(self.reuse) + len(self.transfer),
            "reused_files": len(self.reuse),
            "transfer_files": len(self.transfer),
            "transfer_bytes": sum(t["size"] for t in self.transfer),
            "refused": len(self.refused),
        }


def plan_backup(core_api, target: ExecTarget, repo: Repository, settings: BackupSettings) -> Plan:
    files, refused = list_files(core_api, target)
    for reason in refused:
        log.warning("skipping: %s", reason)
    if not files:
        refuse_empty(repo.cluster_id, f"{target.etl_root} in pod {target.pod.name}")
    base_id = repo.latest_good()
    base = {e.path: e for e in repo.load_manifest(base_id).files} if base_id else {}
    quarantined = repo.quarantined()
    reuse, changed = [], []
    for f in files:
        previous = base.get(f.path)
        if (
            previous
            and previous.object not in quarantined
            and previous.size == f.size
            and previous.mtime == f.mtime
            and previous.compression == settings.compression
        ):
            reuse.append(asdict(previous))
        else:
            changed.append(f)
    digests = hash_files(core_api, target, [f.path for f in changed], settings.batch_files) if changed else {}
    stored = repo.reusable_objects() if changed else {}
    transfer = []
    for f in changed:
        digest = digests[f.path]
        key = object_key(digest, settings.compression)
        if key in stored:  # same content is already in the repository (e.g. a file touched, not changed)
            reuse.append(
                asdict(FileEntry(f.path, f.size, f.mtime, digest, key, stored[key], settings.compression))
            )
        else:
            transfer.append({"path": f.path, "size": f.size, "mtime": f.mtime, "sha256": digest})
    plan = Plan(new_snapshot_id(), repo.cluster_id, base_id, reuse, transfer, refused)
    log.info("plan for %s: %s", repo.cluster_id, plan.summary())
    return plan
