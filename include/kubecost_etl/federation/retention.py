"""Retention of a cluster's federated files: the only deletes this pipeline ever makes.

``federated.retention: {"1h": "7d", "10m": "7d"}`` deletes objects of exactly those resolution folders
whose window *end* is older than the age (Kubecost's object-storage-cleanup rule; it keeps ``1d``
because the Aggregator needs only daily files to rebuild). A resolution not named is never deleted,
``1d`` included. Files that disappeared from the pod are kept: the bucket is not a mirror of the pod's
deletions. Keys whose name carries no window are never deleted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from kubecost_etl.storage.base import ObjectStore

from .layout import FederatedLayout
from .owner import Owner, check_owner
from .plan import expired
from .settings import FederatedSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionResult:
    cluster_id: str
    federated_id: str
    policy: dict
    deleted: tuple[str, ...]
    kept: int

    def as_dict(self) -> dict:
        return {**asdict(self), "deleted": list(self.deleted)}

    @classmethod
    def from_dict(cls, data: dict) -> RetentionResult:
        return cls(**{**data, "deleted": tuple(data["deleted"])})


def expired_keys(
    store: ObjectStore, layout: FederatedLayout, retention_seconds: dict[str, int], now: float
) -> tuple[list[str], int]:
    doomed, kept = [], 0
    for info in store.list(layout.data_prefix):
        path = layout.relative_path(info.key)
        if path is not None and expired(path, retention_seconds, now):
            doomed.append(info.key)
        else:
            kept += 1
    return doomed, kept


def apply_retention(
    store: ObjectStore,
    settings: FederatedSettings,
    cluster_id: str,
    me: Owner,
    now: float | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    now = time.time() if now is None else now
    layout = FederatedLayout(settings.layout, settings.cluster_id)
    policy = settings.retention_seconds()
    if not policy:
        return RetentionResult(cluster_id, settings.cluster_id, {}, (), 0)
    doomed, kept = expired_keys(store, layout, policy, now)
    if doomed and not dry_run:
        check_owner(store, layout, me, settings.take_over)  # never delete in another writer's prefix
        store.delete(doomed)
        log.info(
            "retention %s: deleted %d object(s) of %s older than the policy, kept %d",
            cluster_id,
            len(doomed),
            sorted(settings.retention),
            kept,
        )
    return RetentionResult(cluster_id, settings.cluster_id, dict(settings.retention), tuple(doomed), kept)
