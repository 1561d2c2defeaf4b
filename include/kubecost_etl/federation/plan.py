"""Planning a federated push: compare the pod's listing with the bucket's, without downloading anything.

A file is pushed when its key is missing, or the object's size, recorded source mtime or recorded
sha256 differ from the pod's file (an object without our metadata counts as different). Files the
retention policy would delete are not pushed (or the push and the retention would undo each other
every run); files under the ETL root but outside ``bingen/`` have no federated key and are skipped.
Only the files to push are hashed, in the pod.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from kubecost_etl.errors import Refusal
from kubecost_etl.kube.pod_files import EtlDirMissing, PodFile, hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.storage.base import ObjectStore, StorageError

from .layout import FederatedLayout, carried, file_window
from .owner import Owner, check_owner
from .remote import RemoteFile, RemoteState, remote_state
from .settings import FederatedSettings

log = logging.getLogger(__name__)


class FederationRefused(Refusal):
    """Bad input found before any write (no ETL dir in the pod, no bucket...)."""


@dataclass(frozen=True)
class PushItem:
    path: str  # relative to the ETL root
    size: int
    mtime: int
    sha256: str
    reason: str  # new | size | mtime | sha256 | no-metadata

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FederatePlan:
    cluster_id: str  # the cluster's id in the configuration
    federated_id: str  # its id in the bucket
    layout: str
    pod_files: int
    uploads: tuple[PushItem, ...]
    unchanged: int
    expired: tuple[str, ...] = ()  # older than the retention policy: not pushed
    skipped: tuple[str, ...] = ()  # outside bingen/ or refused paths
    bucket_only: int = 0  # in the bucket, gone from the pod: kept
    metadata_heads: int = 0
    planned_at: int = 0  # unix seconds; files modified later are the next run's business

    def as_dict(self) -> dict:
        data = asdict(self)
        data["uploads"] = [item.as_dict() for item in self.uploads]
        data["expired"], data["skipped"] = list(self.expired), list(self.skipped)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FederatePlan:
        return cls(
            **{
                **data,
                "uploads": tuple(PushItem(**item) for item in data["uploads"]),
                "expired": tuple(data.get("expired", ())),
                "skipped": tuple(data.get("skipped", ())),
            }
        )

    def summary(self) -> dict:
        return {
            "pod_files": self.pod_files,
            "upload_files": len(self.uploads),
            "upload_bytes": sum(i.size for i in self.uploads),
            "unchanged": self.unchanged,
            "expired": len(self.expired),
            "skipped": len(self.skipped),
            "bucket_only": self.bucket_only,
        }


def expired(relative_path: str, retention_seconds: dict[str, int], now: float) -> bool:
    """Whether the retention policy deletes this file: its resolution is named and its end is older."""
    window = file_window(relative_path)
    if window is None or window.resolution not in retention_seconds:
        return False
    return window.end < now - retention_seconds[window.resolution]


def pod_listing(core_api, target: ExecTarget, cluster_id: str) -> tuple[list[PodFile], list[str]]:
    try:
        return list_files(core_api, target)
    except EtlDirMissing as exc:
        raise FederationRefused(f"cluster {cluster_id!r}: etl_path: {exc}") from None


def bucket_state(store: ObjectStore, layout: FederatedLayout, cluster_id: str) -> RemoteState:
    try:
        return remote_state(store, layout)
    except StorageError as exc:
        text = str(exc)
        if any(code in text for code in ("NoSuchBucket", "ContainerNotFound", "HTTP 404", "No such bucket")):
            raise FederationRefused(f"cluster {cluster_id!r}: federated.object_store: {text}") from None
        raise


def compare(pod: PodFile, remote: RemoteFile | None) -> str | None:
    """Why ``pod`` must be pushed, or None when the object already is this file."""
    if remote is None:
        return "new"
    if remote.size != pod.size:
        return "size"
    if not remote.described:
        return "no-metadata"
    if remote.mtime != pod.mtime:
        return "mtime"
    return None


def plan_push(
    core_api,
    target: ExecTarget,
    store: ObjectStore,
    settings: FederatedSettings,
    cluster_id: str,
    me: Owner,
    now: float | None = None,
) -> FederatePlan:
    """What to push; refuses (before any write) a pod without its ETL dir, a missing bucket,
    another writer.
    """
    now = time.time() if now is None else now
    layout = FederatedLayout(settings.layout, settings.cluster_id)
    files, refused = pod_listing(core_api, target, cluster_id)
    state = bucket_state(store, layout, cluster_id)
    check_owner(store, layout, me, settings.take_over)
    retention = settings.retention_seconds()
    candidates: list[tuple[PodFile, str]] = []
    skipped, old, seen = list(refused), [], set()
    unchanged = 0
    for f in files:
        if not carried(f.path):
            skipped.append(f"outside bingen/, no federated key: {f.path}")
            continue
        if expired(f.path, retention, now):
            old.append(f.path)
            continue
        key = layout.key(f.path)
        seen.add(key)
        reason = compare(f, state.files.get(key))
        if reason is None:
            unchanged += 1
        else:
            candidates.append((f, reason))
    digests = (
        hash_files(core_api, target, [f.path for f, _ in candidates], settings.batch_files)
        if candidates
        else {}
    )
    uploads = []
    for f, reason in candidates:
        remote = state.files.get(layout.key(f.path))
        # Same bytes with a new mtime is still pushed (reason "mtime"): the object's metadata must name
        # the file's current mtime, or every later run would find it changed again.
        if reason == "mtime" and remote is not None and remote.sha256 != digests[f.path]:
            reason = "sha256"
        uploads.append(PushItem(f.path, f.size, f.mtime, digests[f.path], reason))
    plan = FederatePlan(
        cluster_id,
        settings.cluster_id,
        settings.layout.value,
        len(files),
        tuple(uploads),
        unchanged,
        tuple(old),
        tuple(skipped),
        sum(1 for key in state.files if key not in seen),
        state.heads,
        int(now),
    )
    for reason in skipped:
        log.warning("%s: %s", cluster_id, reason)
    log.info("federation plan for %s -> %s: %s", cluster_id, layout.describe(), plan.summary())
    return plan
