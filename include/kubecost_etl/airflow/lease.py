"""The cluster lease in Airflow: who a task is, the lease of a configured cluster, and the two helpers
every DAG uses around its stages.

- ``ClusterLeaseSensor`` (``airflow/sensors/lease.py``) is the setup task: it acquires the lease, or
  waits for it in ``reschedule`` mode (no worker slot), and returns the holder through XCom.
- ``lease_held(cluster_id, lease)``: the context a stage runs in; it checks the run still holds the
  lease, renews it from a thread while the stage works, and fails with ``LeaseLost`` otherwise.
- ``release(cluster_id, lease)``: the teardown's body; it always runs, and also finds a lease an
  acquire took whose answer was lost (same dag, run and map index).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from kubecost_etl.config import ClusterConfig, load_config
from kubecost_etl.errors import Refusal
from kubecost_etl.lease import ClusterLease, Holder, utcnow
from kubecost_etl.snapshots.repository import ROOT as REPOSITORY_ROOT
from kubecost_etl.storage.base import StorageError

log = logging.getLogger(__name__)


def cluster_lease(cluster: ClusterConfig) -> ClusterLease:
    """The cluster's lease: in its backup store (the same store and prefix its repository uses); for a
    cluster without backups, in its federated store, else its share store. One place per cluster."""
    from kubecost_etl.airflow.hooks.object_store import open_repository, open_store
    from kubecost_etl.errors import ConfigError

    if cluster.backup is not None:
        return ClusterLease(open_repository(cluster).store, cluster.id, cluster.lease)
    federated = getattr(cluster, "federated", None)
    share = getattr(cluster, "share", None)
    ref = (
        federated.object_store
        if federated is not None
        else share.object_store
        if share is not None and share.object_store is not None
        else None
    )
    if ref is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: no object store to keep the cluster's lease in "
            "(configure backup.object_store)"
        )
    return ClusterLease(open_store(ref), cluster.id, cluster.lease)


@contextmanager
def lease_for_one_task(cluster: ClusterConfig, context: Any | None) -> Iterator[Holder]:
    """For pipelines that touch the cluster in one task (share, import): take the lease (a holder
    elsewhere makes the task fail and retry later: ``LeaseHeld`` is transient), hold and renew it while
    the task works, release it whatever happens. Without a task context (a stage called directly, as
    tests and scripts do) the holder is named after this process."""
    lease = cluster_lease(cluster)
    me = (
        holder_for(context)
        if context is not None
        else Holder(dag_id="(direct call)", run_id=f"pid-{os.getpid()}")
    )
    holder = lease.acquire(me)
    try:
        with lease.held(holder):
            yield holder
    finally:
        lease.release(holder)


def holder_for(context: Any) -> Holder:
    """This task instance as a lease holder (a fresh random token per attempt)."""
    ti = context["ti"]
    return Holder(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
    )


def clean_stale_uploads(lease: ClusterLease) -> None:
    """Abort what killed runs left in the cluster's repository: every upload open when the lease is taken.

    Called right after acquiring, under the lease: every writer holds the lease while it uploads, so an
    upload still open now belongs to a run that no longer holds it (killed, or expired and taken over: that
    run stops at its next lease check). No age rule: "older than the ttl" spared the uploads a killed run
    started after its last renewal when the next run took the lease over right after it expired. (An upload
    the store dates later than this worker's clock, by skew, is left to the next run.) A failure here is
    logged, not raised: litter costs money, not correctness.
    """
    prefix = f"{REPOSITORY_ROOT}/{lease.cluster_id}/"
    try:
        aborted = lease.store.abort_stale_uploads(prefix, timedelta(0), now=utcnow())
    except StorageError as exc:
        log.warning("cluster %s: could not clean stale uploads under %s: %s", lease.cluster_id, prefix, exc)
        return
    for upload in aborted:
        log.info(
            "cluster %s: aborted a stale upload of %s (started %s)",
            lease.cluster_id,
            upload.key,
            upload.initiated,
        )


@contextmanager
def lease_held(cluster_id: str, lease: dict) -> Iterator[None]:
    """Run a stage under the run's lease: checked first, renewed while it works, checked at the end."""
    cluster = load_config().cluster(cluster_id)
    holder = Holder.from_dict(lease)
    try:
        with cluster_lease(cluster).held(holder):
            yield
    except Refusal as exc:  # LeaseLost (or a refusal of the stage itself): no retry can make it right
        raise AirflowFailException(str(exc)) from exc


def extend_lease(cluster_id: str, lease: dict, until: datetime) -> None:
    """Keep the lease at least until `until` (a repair step's deadline: Kubecost keeps rebuilding after
    the request whether or not a task renews, and the wait for it happens in the triggerer)."""
    cluster = load_config().cluster(cluster_id)
    record = cluster_lease(cluster).renew(Holder.from_dict(lease), until=until)
    log.info("cluster %s: lease kept until %s", cluster_id, record.expires_at.isoformat())


def release(cluster_id: str | None, lease: dict | None, context: Any) -> str:
    """Release the run's lease on `cluster_id`. `lease` is the setup's result (None if it failed: then
    a lease recorded for this very task identity, taken by an attempt whose answer was lost, is
    released; any other holder's lease is left alone)."""
    if not cluster_id:
        log.info("no cluster was chosen: no lease to release")
        return "not held"
    cluster = load_config().cluster(cluster_id)
    cluster_lease_ = cluster_lease(cluster)
    if lease is not None:
        return cluster_lease_.release(Holder.from_dict(lease))
    me = holder_for(context)
    found = cluster_lease_.read()
    if found is not None and found[0].holder.same_task(me):
        log.warning("cluster %s: releasing the lease an unanswered acquire took", cluster_id)
        return cluster_lease_.release(found[0].holder)
    log.info("cluster %s: this run never held the lease", cluster_id)
    return "not held"
