"""The federate pipeline's stages as task callables (cluster id and JSON values in, JSON values out).

Each returns the ``as_dict()`` of a frozen dataclass of the domain (``FederatePlan``, ``PushResult``,
``VerifyReport``, ``RetentionResult``) and rebuilds its inputs with ``from_dict``.
"""

from __future__ import annotations

import logging
import uuid

from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.config import ClusterConfig, load_config
from kubecost_etl.errors import ConfigError, KubecostEtlError
from kubecost_etl.federation.owner import Owner
from kubecost_etl.federation.settings import check_object_store, check_unique_cluster_ids
from kubecost_etl.storage.base import ObjectStore, StorageConfigError

# Light tasks (select_clusters, report) start in a fresh task process: like the backup stages, this
# module imports the Kubernetes client, the provider hooks and the pipeline code inside the stages.

log = logging.getLogger(__name__)
INSTALL_ID_VARIABLE = "kubecost_etl_install_id"


class FederationFailed(KubecostEtlError, RuntimeError):
    pass


def select_clusters(requested: list[str] | None) -> list[str]:
    """Validate the whole configuration's federation (unique ids, readable stores) before any write."""
    config = load_config()
    check_unique_cluster_ids(config.clusters)
    if requested:
        clusters = config.select(requested)
        missing = [c.id for c in clusters if c.federated is None]
        if missing:
            raise ConfigError(
                f"cluster {missing[0]!r}: federated: not configured (no federated.object_store)"
            )
    else:
        clusters = [c for c in config.clusters if c.federated is not None]
    for cluster in clusters:
        _check_store(cluster)
    if any(c.federated.install_id is None for c in clusters):
        install_id()  # created once here, before the clusters run in parallel
    log.info("federating %d cluster(s): %s", len(clusters), ", ".join(c.id for c in clusters) or "none")
    return [c.id for c in clusters]


def _check_store(cluster: ClusterConfig) -> None:
    check_object_store(cluster.federated, cluster.id)
    ref = cluster.federated.object_store
    if ref.conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(ref.conn_id)
        except AirflowNotFoundException:
            raise ConfigError(
                f"cluster {cluster.id!r}: federated.object_store: "
                f"Airflow connection {ref.conn_id!r} is not defined"
            ) from None


def install_id() -> str:
    """This installation's id for owner markers: an Airflow Variable, created with a random id once."""
    from airflow.sdk import Variable

    value = Variable.get(INSTALL_ID_VARIABLE, default=None)
    if not value:
        value = f"airflow-{uuid.uuid4().hex[:12]}"
        Variable.set(
            INSTALL_ID_VARIABLE, value, description="Names this installation in federated owner markers"
        )
        log.info("created Airflow Variable %s = %s", INSTALL_ID_VARIABLE, value)
    return value


def _cluster(cluster_id: str) -> tuple[ClusterConfig, object]:
    from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook

    cluster = load_config().cluster(cluster_id)
    if cluster.federated is None:
        raise ConfigError(f"cluster {cluster_id!r}: federated: not configured")
    return cluster, KubecostClusterHook.for_cluster(cluster).core_v1


def open_federated_store(cluster: ClusterConfig) -> ObjectStore:
    from kubecost_etl.airflow.hooks.object_store import open_store

    try:
        return open_store(cluster.federated.object_store)
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster.id!r}: federated.object_store: {exc}") from None


def _me(cluster: ClusterConfig) -> Owner:
    return Owner(cluster.id, cluster.federated.install_id or install_id())


def find_pod(cluster_id: str) -> dict:
    return backup_stages.find_pod(cluster_id, source="pod")  # federation always reads the pod


def plan(cluster_id: str, target: dict) -> dict:
    from kubecost_etl.federation.plan import plan_push

    cluster, core = _cluster(cluster_id)
    live = backup_stages._live_target(cluster, core, target)
    return plan_push(
        core, live, open_federated_store(cluster), cluster.federated, cluster.id, _me(cluster)
    ).as_dict()


def find_and_plan(cluster_id: str) -> dict:
    """``find_pod`` then ``plan`` in one task start (see the backup stage of that name)."""
    target = find_pod(cluster_id)
    return {"target": target, "plan": plan(cluster_id, target)}


def push(cluster_id: str, target: dict, plan: dict) -> dict:
    from kubecost_etl.federation.plan import FederatePlan
    from kubecost_etl.federation.push import push_files

    cluster, core = _cluster(cluster_id)
    live = backup_stages._live_target(cluster, core, target)
    result = push_files(
        core,
        live,
        open_federated_store(cluster),
        cluster.federated,
        FederatePlan.from_dict(plan),
        _me(cluster),
    )
    return result.as_dict()


def verify(cluster_id: str, target: dict, plan: dict, pushed: dict, full: bool = False) -> dict:
    from kubecost_etl.federation.plan import FederatePlan
    from kubecost_etl.federation.push import PushResult
    from kubecost_etl.federation.verify import verify_push

    cluster, core = _cluster(cluster_id)
    live = backup_stages._live_target(cluster, core, target)
    report = verify_push(
        core,
        live,
        open_federated_store(cluster),
        cluster.federated,
        FederatePlan.from_dict(plan),
        PushResult.from_dict(pushed),
        full=full,
    )
    for pipeline, stores in report.coverage.items():
        for resolution, cov in stores.items():
            log.info(
                "coverage %s/%s: %d files, %d days, %d hours",
                pipeline,
                resolution,
                cov["files"],
                cov["days"],
                cov["hours"],
            )
    if report.pending:
        log.info(
            "%d file(s) changed after the plan; the next run pushes them: %s",
            len(report.pending),
            list(report.pending[:5]),
        )
    for finding in report.damaged:
        log.error("damaged in the pod itself (copied as found): %s: %s", finding["path"], finding["reason"])
    if not report.ok:
        findings = list(report.problems[:10]) + [f"{d['path']}: {d['reason']}" for d in report.damaged[:10]]
        raise FederationFailed(
            f"federated copy of {cluster_id} in {report.location} failed verification: " + "; ".join(findings)
        )
    log.info(
        "federated copy of %s verified: %d objects, %d files compared, %d re-hashed",
        cluster_id,
        report.objects,
        report.checked_files,
        report.rehashed,
    )
    return report.as_dict()


def retention(cluster_id: str) -> dict:
    from kubecost_etl.federation.retention import apply_retention

    cluster, _ = _cluster(cluster_id)
    return apply_retention(
        open_federated_store(cluster), cluster.federated, cluster.id, _me(cluster)
    ).as_dict()


def federated_asset(cluster_id: str):
    from airflow.sdk import Asset

    return Asset(uri=f"kubecost-federated://{cluster_id}", name=f"kubecost_federated_{cluster_id}")


def report(cluster_ids: list[str], results: list[dict | None], retained: list[dict | None]) -> dict:
    """One line per cluster; fails the run when any cluster failed (its own tasks say why).

    ``results`` (verify) and ``retained`` (retention) hold one entry per cluster, None where it failed."""
    from kubecost_etl.federation.retention import RetentionResult
    from kubecost_etl.federation.verify import VerifyReport
    from kubecost_etl.run_report import RunReport

    kept = {r.cluster_id: r for r in map(RetentionResult.from_dict, filter(None, retained))}
    verified = map(VerifyReport.from_dict, filter(None, results))
    done = {r.cluster_id: r for r in verified if r.cluster_id in kept}
    lines, failed = [], []
    for cid in cluster_ids:
        if cid in done:
            r = done[cid]
            lines.append(
                f"{cid}: {r.objects} objects verified in {r.location} "
                f"({r.rehashed} re-hashed, {len(r.pending)} pending), "
                f"{len(kept[cid].deleted)} expired object(s) deleted"
            )
        else:
            failed.append(cid)
            lines.append(f"{cid}: FAILED (see its tasks in this run)")
    for line in lines:
        log.info("%s", line)
    if failed:
        raise FederationFailed(
            f"{len(failed)} of {len(cluster_ids)} cluster(s) not federated: {', '.join(failed)}"
        )
    return RunReport(tuple(sorted(done)), tuple(lines)).as_dict()
