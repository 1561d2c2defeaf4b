"""The share and import pipelines' stages as task callables (typed values in and out as dicts).

Share: ``preflight`` (configuration, window, source and selection checked; nothing written) ->
``bundle`` (streamed into the share store, manifest last, download link).
Import: ``check_archive`` (pass 1: the whole archive read and checked; nothing written) ->
``record_archive`` (pass 2: objects, manifest, full verification).

A refusal (unknown cluster, bad window, missing snapshot or archive, empty selection, hostile archive)
fails the task at once without a retry.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from datetime import UTC, datetime

from airflow.sdk.exceptions import AirflowFailException

from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
from kubecost_etl.airflow.hooks.object_store import open_repository, open_store
from kubecost_etl.config import BackupSettings, ClusterConfig, ConfigError, load_config
from kubecost_etl.errors import Refusal
from kubecost_etl.kube.target import ExecTarget, cluster_exec_target
from kubecost_etl.share import importer
from kubecost_etl.share.importer import ArchiveCheck
from kubecost_etl.share.pipeline import ShareRequest, make_bundle, plan_share, share_window
from kubecost_etl.share.sources import POD
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.base import ObjectStore, StorageConfigError

log = logging.getLogger(__name__)


def _refusals_fail_without_retry(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Refusal as exc:
            raise AirflowFailException(f"{function.__name__}: {exc}") from exc

    return wrapper


@contextmanager
def cluster_lease(cluster_id: str, purpose: str):
    """The per-cluster lease (shared with backup, repair, restore, federate) while a share reads the
    pod or an import writes the repository: taken, renewed and released inside this one task."""
    from airflow.sdk import get_current_context

    from kubecost_etl.airflow.lease import lease_for_one_task

    try:
        context = get_current_context()
    except RuntimeError:  # called outside a task (tests, scripts): the lease is still taken
        context = None
    with lease_for_one_task(_cluster(cluster_id), context) as holder:
        log.info("cluster %s: %s under the cluster's lease (%s)", cluster_id, purpose, holder.describe())
        yield


def _cluster(cluster_id: str | None) -> ClusterConfig:
    return load_config().cluster(cluster_id or None)


def _repository(cluster: ClusterConfig, why: str) -> Repository:
    if cluster.backup is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: backup.object_store: missing ({why} needs the backup repository)"
        )
    return open_repository(cluster)


def _share_store(cluster: ClusterConfig) -> ObjectStore:
    if cluster.share.object_store is None and cluster.backup is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: share.object_store: missing, and no backup.object_store to "
            "default to (where should the bundle go?)"
        )
    ref = cluster.share.object_store or cluster.backup.object_store
    field = "share.object_store" if cluster.share.object_store else "backup.object_store"
    try:
        return open_store(ref)
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster.id!r}: {field}: {exc}") from None


def _target(cluster: ClusterConfig) -> tuple[object, ExecTarget]:
    core = KubecostClusterHook.for_cluster(cluster).core_v1
    return core, cluster_exec_target(core, cluster)


@_refusals_fail_without_retry
def preflight(
    cluster_id: str,
    window: str | None,
    source: str,
    pipelines,
    resolutions,
    created_before: datetime | None = None,
) -> dict:
    """Everything checked before a byte is written: the cluster, both stores, the window, the
    source, the selection.
    """
    cluster = _cluster(cluster_id)
    resolved = share_window(window, datetime.now(UTC).timestamp(), cluster.share.max_window_days)
    share_store = _share_store(cluster)
    core = target = repo = None
    if (source or "").strip() == POD:
        core, target = _target(cluster)
    else:
        repo = _repository(cluster, f"the source {source!r}")
    request, _ = plan_share(
        cluster.id,
        source,
        resolved,
        pipelines,
        resolutions,
        repo=repo,
        core_api=core,
        target=target,
        created_before=created_before,
    )
    log.info("bundle %s of %s goes to %s", request.bundle_id, cluster.id, share_store.description)
    return request.as_dict()


@_refusals_fail_without_retry
def bundle(request: dict) -> dict:
    """Stream the selection into the share store; print and return size, sha256, counts and the link."""
    the_request = ShareRequest.from_dict(request)
    cluster = _cluster(the_request.cluster_id)
    core = target = repo = None
    with cluster_lease(cluster.id, "share"):
        if the_request.source == POD:
            core, target = _target(cluster)
        else:
            repo = _repository(cluster, f"the snapshot {the_request.source!r}")
        batch_files = cluster.backup.batch_files if cluster.backup else BackupSettings.batch_files
        result = make_bundle(
            the_request,
            repo=repo,
            share_store=_share_store(cluster),
            level=cluster.share.compression_level,
            link_hours=cluster.share.link_expiry_hours,
            batch_files=batch_files,
            core_api=core,
            target=target,
        )
    for line in result.lines():
        print(line)  # the task prints its result (size, sha256, counts, link) into its log
    return result.as_dict()


@_refusals_fail_without_retry
def check_archive(cluster_id: str, archive: str) -> dict:
    """Pass 1: the whole archive read and checked against the allow-list and bingen headers;
    nothing written.
    """
    cluster = _cluster(cluster_id)
    store = _repository(
        cluster, "an import"
    ).store.at_root()  # the key is the full object name: no prefix added
    checked = importer.check_archive(store, cluster.id, archive, cluster.share.max_import_file_bytes)
    return checked.as_dict()


@_refusals_fail_without_retry
def record_archive(checked: dict) -> dict:
    """Pass 2: objects first, the manifest last, then every object re-read: a verified snapshot."""
    the_check = ArchiveCheck.from_dict(checked)
    cluster = _cluster(the_check.cluster_id)
    repo = _repository(cluster, "an import")
    with cluster_lease(cluster.id, "import"):
        result = importer.record_archive(
            repo.store.at_root(), repo, the_check, cluster.backup, cluster.hourly_hours
        )
    log.info(
        "imported %s as snapshot %s of %s (%d files, %.1f MB, verified); restore it with "
        'kubecost_etl_restore {"cluster": %r, "snapshot": %r}',
        result.archive,
        result.snapshot_id,
        cluster.id,
        result.files,
        result.bytes / 1e6,
        cluster.id,
        result.snapshot_id,
    )
    return result.as_dict()
