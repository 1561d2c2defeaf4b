"""The backup pipeline's stages as task callables (cluster id and JSON values in, JSON values out)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kubecost_etl.airflow.stages._refusals import refusals_fail_at_once
from kubecost_etl.errors import KubecostEtlError

if TYPE_CHECKING:
    from kubecost_etl.backup.records import FederatedTarget
    from kubecost_etl.kube.target import ExecTarget

# Light tasks (select_clusters, report) start in a fresh task process: this module imports nothing
# heavy at the top. The Kubernetes client, the provider hooks, the SDKs and zstandard are imported
# inside the stages that use them (about 2-5 s of start-up each on a busy 2-core worker).

log = logging.getLogger(__name__)


class BackupFailed(KubecostEtlError, RuntimeError):
    pass


@refusals_fail_at_once
def select_clusters(requested: list[str] | None) -> list[str]:
    """Validate the configuration and the requested ids before anything touches a pod or bucket."""
    from kubecost_etl.airflow.hooks.object_store import check_store_ref
    from kubecost_etl.config import load_config

    config = load_config()
    clusters = config.select(requested or None)
    for cluster in clusters:
        check_store_ref(cluster)
    return [c.id for c in clusters]


def _config(cluster_id: str):
    from kubecost_etl.config import load_config

    return load_config().cluster(cluster_id)


def _cluster(cluster_id: str):
    """The cluster's settings and a Kubernetes API client (only for the stages that talk to the pod)."""
    from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook

    cluster = _config(cluster_id)
    return cluster, KubecostClusterHook.for_cluster(cluster).core_v1


def _find_target(cluster, core) -> ExecTarget:
    from kubecost_etl.kube.target import cluster_exec_target

    return cluster_exec_target(core, cluster)


@refusals_fail_at_once
def find_pod(cluster_id: str, source: str | None = None) -> dict:
    """The exec target in the cluster's pod; with ``backup.source: federated`` (unless ``source`` says
    otherwise) no pod is involved and the target names the federated bucket copy instead."""
    from kubecost_etl.backup.records import FederatedTarget

    cluster = _config(cluster_id)
    if (source or (cluster.backup.source if cluster.backup else "pod")) == "federated":
        ref = cluster.federated
        log.info(
            "cluster %s: backing up its federated copy (%s, cluster id %s), not the pod",
            cluster_id,
            ref.layout.value,
            ref.cluster_id,
        )
        return FederatedTarget(ref.layout.value, ref.cluster_id).as_dict()
    cluster, core = _cluster(cluster_id)
    target = _find_target(cluster, core)
    pod = target.pod
    log.info(
        "cluster %s: pod %s, exec in %s, ETL root %s", cluster_id, pod.name, target.container, target.etl_root
    )
    return target.as_dict()


def _target(target: dict) -> ExecTarget | FederatedTarget:
    from kubecost_etl.backup.records import backup_target

    return backup_target(target)


def _live_target(cluster, core, target: ExecTarget | dict) -> ExecTarget:
    """The target found earlier, or a fresh one if the pod was replaced in between (a restart); a debug
    container that ended meanwhile (its sleep ran out, cost-model restarted in place) is replaced too."""
    from kubecost_etl.kube.pods import pod_uid
    from kubecost_etl.kube.target import ExecTarget, ensure_running

    target = ExecTarget.from_dict(target) if isinstance(target, dict) else target

    pod = target.pod
    if pod_uid(core, pod.namespace, pod.name) == pod.uid:
        return ensure_running(
            core, target, cluster.debug_image, lifetime_seconds=cluster.debug_container_seconds
        )
    log.warning("pod %s was replaced since it was found; finding the new one", pod.name)
    return _find_target(cluster, core)


def _federated_store(cluster):
    from kubecost_etl.airflow.stages.federate import open_federated_store

    return open_federated_store(cluster)


@refusals_fail_at_once
def plan(cluster_id: str, target: dict) -> dict:
    from kubecost_etl.airflow.hooks.object_store import open_repository
    from kubecost_etl.backup.plan import plan_backup
    from kubecost_etl.backup.records import FederatedTarget

    target = _target(target)
    if isinstance(target, FederatedTarget):
        from kubecost_etl.federation.snapshot import plan_from_bucket

        cluster = _config(cluster_id)
        return plan_from_bucket(
            _federated_store(cluster), cluster.federated, open_repository(cluster), cluster.backup
        ).as_dict()
    cluster, core = _cluster(cluster_id)
    live = _live_target(cluster, core, target)
    return plan_backup(core, live, open_repository(cluster), cluster.backup).as_dict()


@refusals_fail_at_once
def find_and_plan(cluster_id: str) -> dict:
    """``find_pod`` then ``plan``, in one task start: ``{"target": ..., "plan": ...}``.

    Finding the pod is planning's first step; as a task of its own it cost a fresh task process (the
    Kubernetes client's import included) for what is about 0.1 s of work. Both remain stage functions
    (the safety backups and the tests call them), called here through the module so a fault armed on
    either one still fires."""
    target = find_pod(cluster_id)
    return {"target": target, "plan": plan(cluster_id, target)}


@refusals_fail_at_once
def stream(cluster_id: str, target: dict, plan: dict) -> dict:
    from kubecost_etl.airflow.hooks.object_store import open_repository
    from kubecost_etl.backup.plan import Plan
    from kubecost_etl.backup.records import FederatedTarget
    from kubecost_etl.backup.stream import stream_files

    target, plan = _target(target), Plan.from_dict(plan)
    if isinstance(target, FederatedTarget):
        from kubecost_etl.federation.snapshot import stream_from_bucket

        cluster = _config(cluster_id)
        return stream_from_bucket(
            _federated_store(cluster),
            cluster.federated,
            open_repository(cluster),
            plan.transfer,
            cluster.backup,
        ).as_dict()
    cluster, core = _cluster(cluster_id)
    live = _live_target(cluster, core, target)
    return stream_files(core, live, open_repository(cluster), plan.transfer, cluster.backup).as_dict()


def snapshot_source(cluster, pod_name: str, via_debug_container: bool) -> dict:
    """Where a snapshot's files were read, as its manifest records it."""
    return {
        "namespace": cluster.namespace,
        "pod": pod_name,
        "container": cluster.container,
        "etl_path": cluster.etl_path,
        "via_debug_container": via_debug_container,
    }


@refusals_fail_at_once
def commit(cluster_id: str, target: dict, plan: dict, streamed: dict) -> str:
    from kubecost_etl.airflow.hooks.object_store import open_repository
    from kubecost_etl.backup.commit import commit_snapshot
    from kubecost_etl.backup.plan import Plan
    from kubecost_etl.backup.records import FederatedTarget

    cluster = _config(cluster_id)  # no Kubernetes client: these stages only read the store
    target = _target(target)
    if isinstance(target, FederatedTarget):
        source = {"federated": _federated_store(cluster).description, **target.as_dict()}
    else:
        source = snapshot_source(cluster, target.pod.name, target.via_debug_container)
    manifest = commit_snapshot(
        open_repository(cluster), Plan.from_dict(plan), streamed, source, cluster.hourly_hours
    )
    return manifest.snapshot_id


@refusals_fail_at_once
def verify(cluster_id: str, snapshot_id: str, full: bool = False) -> dict:
    from kubecost_etl.airflow.hooks.object_store import open_repository
    from kubecost_etl.backup.records import VerifiedSnapshot
    from kubecost_etl.snapshots.verify import SnapshotDamaged, VerificationReport, verify_snapshot

    cluster = _config(cluster_id)  # no Kubernetes client: these stages only read the store
    repo = open_repository(cluster)
    report = VerificationReport.from_dict(
        verify_snapshot(repo, snapshot_id, cluster.backup.verify_sample, full)
    )
    for store, cov in report.coverage.items():
        log.info(
            "coverage %s: %d files, %s h, windows %s, gaps %s %s",
            store,
            cov["files"],
            cov["covered_hours"],
            cov["windows"],
            cov["gaps"],
            "; ".join(cov["warnings"]),
        )
    for finding in report.damaged:
        log.error("damaged in the pod itself (copied as found): %s: %s", finding["path"], finding["reason"])
    if not report.ok:
        findings = list(report.problems[:10]) + [f"{d['path']}: {d['reason']}" for d in report.damaged[:10]]
        raise SnapshotDamaged(
            f"verification of snapshot {snapshot_id} of {cluster_id} failed: " + "; ".join(findings)
        )
    log.info(
        "snapshot %s of %s verified: %d objects present, %d re-hashed",
        snapshot_id,
        cluster_id,
        report.objects_present,
        report.rehashed,
    )
    return VerifiedSnapshot(
        cluster_id, snapshot_id, repo.description, report.objects, report.rehashed, report.coverage
    ).as_dict()


@refusals_fail_at_once
def run_backup(cluster_id: str, full_verify: bool = False) -> dict:
    """The whole pipeline in one call (for the repair and restore pipelines' safety backups)."""
    target = find_pod(cluster_id, source="pod")  # a safety backup is of the pod's live data
    the_plan = plan(cluster_id, target)
    streamed = stream(cluster_id, target, the_plan)
    snapshot_id = commit(cluster_id, target, the_plan, streamed)
    return verify(cluster_id, snapshot_id, full_verify)


def snapshot_asset(cluster_id: str):
    from airflow.sdk import Asset

    return Asset(uri=f"kubecost-etl://{cluster_id}/snapshots", name=f"kubecost_etl_snapshots_{cluster_id}")


@refusals_fail_at_once
def report(cluster_ids: list[str], results: list[dict]) -> dict:
    """One line per cluster: the verified snapshot, or that it failed (its own tasks say why).

    ``results`` holds one entry per cluster, in order, None where the cluster failed."""
    from kubecost_etl.backup.records import VerifiedSnapshot
    from kubecost_etl.run_report import RunReport

    # None: that cluster's verify never succeeded
    done = {r.cluster_id: r for r in map(VerifiedSnapshot.from_dict, filter(None, results))}
    lines, failed = [], []
    for cid in cluster_ids:
        if cid in done:
            lines.append(done[cid].describe())
        else:
            failed.append(cid)
            lines.append(f"{cid}: FAILED (see its tasks in this run)")
    for line in lines:
        log.info("%s", line)
    if failed:
        # The run's leaf task: failing here keeps a partly failed run from showing green.
        raise BackupFailed(
            f"{len(failed)} of {len(cluster_ids)} cluster(s) not backed up: {', '.join(failed)}"
        )
    return RunReport(tuple(sorted(done)), tuple(lines)).as_dict()
