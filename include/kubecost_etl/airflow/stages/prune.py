"""The prune pipeline's stages as task callables (cluster id and JSON values in, JSON values out).

``forget`` is phase 1 (the policy decides; manifests, then their verification records, are
deleted), ``collect`` is phase 2 (unreferenced objects older than the safety margin, stale records,
unfinished uploads), ``report`` puts both into one ``PruneReport`` and logs its table. Each phase
looks at the store afresh, so a retried or a later run finishes what a killed one left. A dry run
goes through the same code and deletes nothing.
"""

from __future__ import annotations

import logging

from kubecost_etl.airflow.hooks.object_store import check_store_ref, open_repository
from kubecost_etl.airflow.stages._refusals import refusals_fail_at_once
from kubecost_etl.config import ClusterConfig, ConfigError, load_config
from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.prune import gc
from kubecost_etl.prune.gc import CollectResult, ForgetResult, PruneReport
from kubecost_etl.snapshots.repository import Repository

log = logging.getLogger(__name__)


class PruneFailed(KubecostEtlError, RuntimeError):
    pass


@refusals_fail_at_once
def select_clusters(requested: list[str] | None) -> list[str]:
    """The clusters to prune: those named (each must have a ``retention`` policy), or every one
    with a policy.
    """
    clusters = load_config().select(requested or None)  # a cluster named twice is refused there
    chosen = []
    for cluster in clusters:
        if cluster.retention is None:
            if requested:
                raise ConfigError(
                    f"cluster {cluster.id!r}: retention: missing (no policy, nothing to prune by)"
                )
            log.info("cluster %s has no retention policy: not pruned", cluster.id)
            continue
        check_store_ref(cluster)
        chosen.append(cluster.id)
    if not chosen:
        log.warning("no configured cluster has a retention policy: nothing to prune")
    return chosen


def _open(cluster_id: str) -> tuple[ClusterConfig, Repository]:
    cluster = load_config().cluster(cluster_id)
    if cluster.retention is None:
        raise ConfigError(f"cluster {cluster_id!r}: retention: missing (no policy, nothing to prune by)")
    return cluster, open_repository(cluster)


def snapshots_in_use(cluster: ClusterConfig) -> list[str]:
    """Snapshots a running restore or share names; they are kept whatever the policy says.

    The cluster's lease is exclusive and a restore holds it for its whole run, so no restore runs
    while the prune holds it: none to name today. A pipeline that reads a snapshot without the
    lease (a share bundle made from a snapshot) names its snapshot here when it records one.
    """
    return []


@refusals_fail_at_once
def forget(cluster_id: str, dry_run: bool) -> dict:
    """Phase 1: decide, then delete the forgotten snapshots' manifests and verification records."""
    cluster, repo = _open(cluster_id)
    result = gc.forget(repo, cluster.retention, dry_run=dry_run, in_use=snapshots_in_use(cluster))
    return result.as_dict()


@refusals_fail_at_once
def collect(cluster_id: str, forgotten: dict, dry_run: bool) -> dict:
    """Phase 2: delete unreferenced objects older than the margin, stale records, unfinished uploads."""
    cluster, repo = _open(cluster_id)
    phase1 = ForgetResult.from_dict(forgotten)
    return gc.collect(repo, cluster.retention, dry_run=dry_run, forgotten=phase1.forgotten).as_dict()


@refusals_fail_at_once
def report(cluster_id: str, forgotten: dict, collected: dict) -> dict:
    """The cluster's prune report: logged as a table, returned as the task's value."""
    cluster, repo = _open(cluster_id)
    result = PruneReport.build(
        repo.description,
        cluster.retention,
        ForgetResult.from_dict(forgotten),
        CollectResult.from_dict(collected),
    )
    for line in result.table().splitlines():
        log.info("%s", line)
    return result.as_dict()


def prune_asset(cluster_id: str):
    from airflow.sdk import Asset

    return Asset(uri=f"kubecost-etl://{cluster_id}/prune", name=f"kubecost_etl_prune_{cluster_id}")


@refusals_fail_at_once
def summary(cluster_ids: list[str], results: list[dict | None]) -> dict:
    """One line per cluster; fails the run when any cluster's prune failed (its own tasks say why)."""
    from kubecost_etl.prune.gc import PruneReport
    from kubecost_etl.run_report import RunReport

    done = {r.cluster_id: r for r in map(PruneReport.from_dict, filter(None, results))}
    lines, failed = [], []
    for cid in cluster_ids:
        if cid in done:
            r = done[cid]
            verb = "would forget" if r.dry_run else "forgot"
            lines.append(
                f"{cid}: kept {len(r.kept)}, {verb} {len(r.forgotten)} snapshot(s); "
                f"{r.objects_deleted} object(s), {r.bytes_deleted / 1e6:.1f} MB "
                f"{'would be ' if r.dry_run else ''}deleted; {r.bytes_remaining / 1e6:.1f} MB remain"
            )
        else:
            failed.append(cid)
            lines.append(f"{cid}: FAILED (see its tasks in this run)")
    for line in lines:
        log.info("%s", line)
    if failed:
        raise PruneFailed(f"{len(failed)} of {len(cluster_ids)} cluster(s) not pruned: {', '.join(failed)}")
    return RunReport(tuple(sorted(done)), tuple(lines)).as_dict()
