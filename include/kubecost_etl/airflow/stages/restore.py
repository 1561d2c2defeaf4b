"""The restore pipeline's stages as task callables (JSON values in, JSON values out).

``preflight`` returns the run's context (``ctx``, a ``RestoreContext`` in XCom form): cluster,
pinned snapshot, mode, whether to restart, the dir token and the exec target. Values crossing
task boundaries are frozen dataclasses with ``as_dict``/``from_dict`` (``SwapResult``,
``PostCheckReport``); XCom holds their JSON form. Every later stage reloads the manifest and checks it
against the pinned sha256, and re-resolves the pod when a restart replaced it. ``finish`` is the
run's teardown: it removes this run's dirs after a passed post-check, and otherwise puts the
previous ETL dir back (restarting Kubecost again if the restore had restarted it).

With ``source: federated`` or ``durable`` the files come from the cluster's federated mirror instead of a
snapshot (``kubecost_etl.restore.mirror``): preflight lists and pins the mirror (``manifest_sha256`` is
the listing's digest), ``verify_snapshot`` re-lists it, refuses any change, reads and re-hashes every
object and returns the verified listing; ``plan``, ``stage``, ``check_staged`` and ``post_check`` take
that listing (``verified``) and compare against exactly the sha256s verified. Everything else (lease,
safety backup, swap, restart, finish) is the snapshot restore's own code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from airflow.sdk.exceptions import AirflowSkipException

from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
from kubecost_etl.airflow.hooks.object_store import open_repository
from kubecost_etl.airflow.stages._refusals import refusals_fail_at_once
from kubecost_etl.airflow.stages.backup import snapshot_source
from kubecost_etl.backup.pipeline import back_up
from kubecost_etl.config import ClusterConfig, load_config
from kubecost_etl.errors import ConfigError, ParamsError
from kubecost_etl.kube.pod_files import EtlDirMissing, list_files
from kubecost_etl.kube.pods import PodNotFound, PodRef, find_cost_model_pod, find_running_pod, pod_uid
from kubecost_etl.kube.rollout import (
    owning_workload,
    restart_workload,
    wait_for_replacement,
)
from kubecost_etl.kube.target import ExecTarget, cluster_exec_target, ensure_running
from kubecost_etl.restore import mirror, pod_dirs
from kubecost_etl.restore import post_check as checking
from kubecost_etl.restore import stage as staging
from kubecost_etl.restore import swap as swapping
from kubecost_etl.restore.context import RestoreContext
from kubecost_etl.restore.modes import MIRROR_SOURCES, SNAPSHOT_SOURCE, SOURCES
from kubecost_etl.restore.plan import (
    REPLACE,
    check_mode,
    plan_restore,
    pod_digests,
    same_size_paths,
    scan_tree,
)
from kubecost_etl.restore.pod_dirs import RestoreDirs, restore_token
from kubecost_etl.snapshots.pinned import (
    LATEST,
    RestoreRefused,
    describe,
    load_pinned,
    resolve_snapshot,
    verify_pinned,
)

log = logging.getLogger(__name__)
RESTART_TIMEOUT_S = 900.0


def _cluster(cluster_id: str | None) -> tuple[ClusterConfig, KubecostClusterHook]:
    cluster = load_config().cluster(cluster_id)
    return cluster, KubecostClusterHook.for_cluster(cluster)


def _pinned(cluster: ClusterConfig, ctx: RestoreContext):
    repo = open_repository(cluster)
    return repo, load_pinned(repo, ctx.snapshot_id, ctx.manifest_sha256)


@dataclass(frozen=True)
class _Source:
    """The files a restore writes and where their bytes come from (a snapshot's objects or a mirror's)."""

    files: list  # FileEntry, sorted as the source lists them
    repo: object | None  # the snapshot's repository; None for a mirror
    content: Callable | None  # FileEntry -> (() -> chunks) for a mirror; None: the repository's objects


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ParamsError(f"source: {source!r} is not one of {list(SOURCES)}")
    return source


def _federated(cluster: ClusterConfig, source: str):
    if cluster.federated is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: federated: not configured, so there is no {source} mirror to "
            f"restore from (source {source}); add a federated: block or use source snapshot"
        )
    return cluster.federated


def _mirror_store(cluster: ClusterConfig, source: str):
    from kubecost_etl.airflow.stages.federate import open_federated_store
    from kubecost_etl.federation.settings import check_object_store

    check_object_store(_federated(cluster, source), cluster.id)
    return open_federated_store(cluster)


def _verified_listing(ctx: RestoreContext, verified: dict | None) -> mirror.MirrorListing:
    if not verified or "listing" not in verified:
        raise RestoreRefused(
            f"cluster {ctx.cluster_id!r}: no verified mirror listing was handed to this task "
            "(verify_snapshot's result): nothing is written unverified"
        )
    listing = mirror.MirrorListing.from_dict(verified["listing"])
    if listing.digest != ctx.manifest_sha256 or not listing.verified:
        raise RestoreRefused(
            f"cluster {ctx.cluster_id!r}: the verified mirror listing is not the one this restore pinned"
        )
    return listing


def _source(cluster: ClusterConfig, ctx: RestoreContext, verified: dict | None) -> _Source:
    if not ctx.from_mirror:
        repo, pinned = _pinned(cluster, ctx)
        return _Source(list(pinned.files), repo, None)
    listing = _verified_listing(ctx, verified)
    store = _mirror_store(cluster, ctx.source)
    by_path = listing.by_path()
    return _Source(
        listing.entries(), None, lambda entry: mirror.content(store, by_path[entry.path], cluster.id)
    )


def _resolve(core, cluster: ClusterConfig, pod: PodRef) -> ExecTarget:
    return cluster_exec_target(core, cluster, pod)


def _target(cluster: ClusterConfig, core, ctx: RestoreContext, ready: bool = True) -> ExecTarget:
    """The exec target found by preflight, or a fresh one when the pod was replaced (a restart).

    A debug container that ended (its sleep ran out, cost-model restarted in place) is replaced by a
    fresh one. ``ready=False`` accepts a pod that runs but is not Ready: a roll back must still reach it.
    """
    known = ctx.target
    try:
        pod = find_cost_model_pod(core, cluster.namespace, cluster.selector, cluster.container)
    except PodNotFound:
        if ready:
            raise
        pod = find_running_pod(core, cluster.namespace, cluster.selector, cluster.container)
    if pod.uid == known.pod.uid:
        current = ensure_running(
            core, known, cluster.debug_image, lifetime_seconds=cluster.debug_container_seconds
        )
        if current.container != known.container:
            log.info(
                "debug container %s in pod %s no longer runs; using %s",
                known.container,
                pod.name,
                current.container,
            )
        return current
    log.info("pod %s replaced %s since preflight; resolving where to exec again", pod.name, known.pod.name)
    return _resolve(core, cluster, pod)


def _dirs(target: ExecTarget, ctx: RestoreContext) -> RestoreDirs:
    return RestoreDirs(target.etl_root, ctx.token)


@refusals_fail_at_once
def preflight(
    cluster_id: str,
    snapshot: str,
    mode: str,
    restart: bool | None,
    dry_run: bool,
    run_id: str,
    created_before: datetime,
    source: str = SNAPSHOT_SOURCE,
) -> dict:
    """Check the configuration, the snapshot (or the mirror), the pod and what lies next to its ETL dir."""
    check_mode(mode)
    check_source(source)
    cluster, hook = _cluster(cluster_id or None)
    if source in MIRROR_SOURCES:
        if snapshot not in (LATEST, "", None):
            raise ParamsError(
                f"snapshot: {snapshot!r} names a snapshot, but source {source} restores the cluster's "
                f"{source} mirror; leave snapshot at {LATEST!r} or use source snapshot"
            )
        listing = mirror.list_mirror(_mirror_store(cluster, source), cluster.federated, source, cluster.id)
        snapshot_id, pinned_sha256 = f"{source}-{listing.federated_id}", listing.digest
        files, nbytes = len(listing.files), listing.total_bytes
        log.info(
            "restoring the %s mirror %s (%d files, %.1f MB, listing sha256 %s..) into cluster %s, mode %s%s",
            source,
            listing.location,
            files,
            nbytes / 1e6,
            pinned_sha256[:12],
            cluster.id,
            mode,
            " (dry run)" if dry_run else "",
        )
    else:
        repo = open_repository(cluster)
        snapshot_id = resolve_snapshot(repo, snapshot, created_before)
        pinned = load_pinned(repo, snapshot_id)
        pinned_sha256, files, nbytes = pinned.sha256, len(pinned.files), pinned.manifest.total_bytes
        log.info(
            "restoring %s into cluster %s, mode %s%s",
            describe(pinned),
            cluster.id,
            mode,
            " (dry run)" if dry_run else "",
        )
    core = hook.core_v1
    pod = find_cost_model_pod(core, cluster.namespace, cluster.selector, cluster.container)
    target = _resolve(core, cluster, pod)
    token = restore_token(snapshot_id, run_id)
    dirs = RestoreDirs(target.etl_root, token)
    state = pod_dirs.inspect(core, target, dirs)
    if state.live_not_a_directory:
        raise RestoreRefused(f"{dirs.live} in pod {pod.name} exists but is not a directory")
    earlier_previous = [p for p in state.other_runs if f"{dirs.name}.previous-" in p]
    if not state.live and len(earlier_previous) == 1 and not dry_run:
        # Not changed here: this task does not hold the cluster's lease yet. plan puts it back,
        # under the lease.
        log.warning(
            "%s is missing but %s exists: an earlier restore stopped between its two renames; its "
            "previous data is put back before this restore plans",
            dirs.live,
            earlier_previous[0],
        )
    elif not state.live and earlier_previous:
        raise RestoreRefused(
            f"{dirs.live} is missing but {earlier_previous} exist: an earlier restore stopped "
            f"between its two renames. Its data is there; put it back first "
            f"(kubectl exec -n {pod.namespace} {pod.name} -c "
            f"{target.container} -- mv -T {earlier_previous[-1]} {dirs.live})"
        )
    for leftover in state.other_runs:
        log.warning(
            "left by an earlier restore run (kept; remove it once you no longer need it): %s", leftover
        )
    return RestoreContext(
        cluster_id=cluster.id,
        snapshot_id=snapshot_id,
        manifest_sha256=pinned_sha256,
        mode=mode,
        restart=(mode == REPLACE) if restart is None else bool(restart),
        dry_run=bool(dry_run),
        token=token,
        target=target,
        files=files,
        bytes=nbytes,
        leftovers=tuple(state.other_runs),
        source=source,
    ).as_dict()


@refusals_fail_at_once
def verify_snapshot(ctx: dict) -> dict:
    """Download and re-hash every object of the snapshot (or the mirror) before anything touches the pod.

    For a mirror the result carries the verified listing (``listing``) the later stages write and check.
    """
    ctx = RestoreContext.from_dict(ctx)
    cluster, _ = _cluster(ctx.cluster_id)
    if ctx.from_mirror:
        store = _mirror_store(cluster, ctx.source)
        listing, report = mirror.verify_mirror(
            store, cluster.federated, ctx.source, cluster.id, ctx.manifest_sha256
        )
        log.info(
            "%s mirror %s verified: %d objects re-hashed (%d against their metadata sha256, %d without any: "
            "hashed as read)",
            ctx.source,
            listing.location,
            report["rehashed"],
            report["verified_by_metadata"],
            report["unverifiable_against_metadata"],
        )
        return {
            **report,
            "snapshot_id": ctx.snapshot_id,
            "files": len(listing.files),
            "listing": listing.as_dict(),
        }
    repo, pinned = _pinned(cluster, ctx)
    report = verify_pinned(repo, pinned)
    log.info("snapshot %s verified: %d objects re-hashed", ctx.snapshot_id, report["rehashed"])
    return report


@refusals_fail_at_once
def plan(ctx: dict, verified: dict | None = None) -> dict:
    """What the restore would change; logged line by line (the whole answer of a dry run)."""
    ctx = RestoreContext.from_dict(ctx)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    files = _source(cluster, ctx, verified).files
    target = _target(cluster, core, ctx)
    if not ctx.dry_run:
        swapping.put_back_interrupted(core, target, _dirs(target, ctx))
    tree = scan_tree(core, target)
    digests = pod_digests(core, target, same_size_paths(files, tree), cluster.backup.batch_files)
    the_plan = plan_restore(ctx.mode, ctx.snapshot_id, files, tree, digests)
    prefix = "DRY RUN, nothing changed; would " if ctx.dry_run else ""
    for line in the_plan.lines():
        log.info("%s%s", prefix, line)
    log.info("plan: %s", the_plan.summary())
    return the_plan.as_dict()


@refusals_fail_at_once
def safety_backup(ctx: dict, plan: dict) -> dict:
    """Back up what the pod has now, right before the swap (skipped only when the ETL dir is proven
    absent or empty now; the plan's count from before staging is not trusted for that).

    The pod is often restored because its files are damaged: set files whose bingen header is
    broken in the pod are kept as they are (and the snapshot is not marked good); a stored copy
    that differs from what was read (missing object, wrong hash) fails the task before the pod
    is touched.
    """
    ctx = RestoreContext.from_dict(ctx)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    target = _target(cluster, core, ctx)  # preflight's: a second debug container is only added if it ended
    try:
        present = len(list_files(core, target)[0])
    except EtlDirMissing:
        present = 0
    if present == 0:
        raise AirflowSkipException(
            f"the pod's ETL dir {target.etl_root} is missing or has no files now "
            "(checked with test -d and a listing): nothing to back up"
        )
    source = snapshot_source(cluster, target.pod.name, target.via_debug_container)
    manifest, report = back_up(
        core,
        target,
        open_repository(cluster),
        cluster.backup,
        source,
        full_verify=True,
        hourly_hours=cluster.hourly_hours,
    )
    snapshot_id = manifest.snapshot_id
    if not report["integrity_ok"]:
        raise RuntimeError(
            f"the safety backup {snapshot_id} is not stored intact, nothing was restored: "
            + "; ".join(report["problems"][:10])
        )
    for finding in report["damaged"]:
        log.warning(
            "the pod's current data is damaged (kept as it is in the safety backup): %s: %s",
            finding["path"],
            finding["reason"],
        )
    log.info(
        "safety backup of the current data: snapshot %s (%d objects re-hashed)",
        snapshot_id,
        report["rehashed"],
    )
    return {"snapshot_id": snapshot_id, "objects": report["objects"], "damaged_files": len(report["damaged"])}


def _files_to_write(files: list, ctx: RestoreContext, plan: dict) -> list:
    if ctx.mode == REPLACE:
        return list(files)
    wanted = {f["path"] for f in plan["add"]}
    return [e for e in files if e.path in wanted]


@refusals_fail_at_once
def stage(ctx: dict, plan: dict, verified: dict | None = None) -> dict:
    """Stream the files into the staging dir next to the ETL dir (the live dir is not touched)."""
    ctx = RestoreContext.from_dict(ctx)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    source = _source(cluster, ctx, verified)
    files = _files_to_write(source.files, ctx, plan)
    if not files:
        log.info("nothing is missing from the pod: nothing to stage")
        return {"files": 0, "bytes": 0}
    target = _target(cluster, core, ctx)
    return staging.stage_files(core, target, source.repo, files, _dirs(target, ctx), content=source.content)


@refusals_fail_at_once
def check_staged(ctx: dict, plan: dict, staged: dict, verified: dict | None = None) -> dict:
    if staged["files"] == 0:
        return {"files": 0}
    ctx = RestoreContext.from_dict(ctx)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    files = _source(cluster, ctx, verified).files
    target = _target(cluster, core, ctx)
    report = staging.check_staged(
        core, target, _files_to_write(files, ctx, plan), _dirs(target, ctx), cluster.backup.batch_files
    )
    log.info("staged files checked: %s", report)
    return report


@refusals_fail_at_once
def swap(ctx: dict, plan: dict) -> dict:
    """Replace: two renames. Fill-missing: no-clobber moves of the absent files. Returns a ``SwapResult``."""
    ctx = RestoreContext.from_dict(ctx)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    target = _target(cluster, core, ctx)
    dirs = _dirs(target, ctx)
    if ctx.mode == REPLACE:
        return swapping.swap_replace(core, target, dirs).as_dict()
    return swapping.move_missing(
        core, target, dirs, sorted(f["path"] for f in plan["add"]), cluster.backup.batch_files
    ).as_dict()


@refusals_fail_at_once
def restart(ctx: dict, swapped: dict) -> dict:
    """Roll the workload so Kubecost reloads its files; wait for the new Ready pod."""
    ctx = RestoreContext.from_dict(ctx)
    if not ctx.restart:
        raise AirflowSkipException("restart not asked")
    cluster, hook = _cluster(ctx.cluster_id)
    new_pod, workload = _restart(cluster, hook, PodRef(**swapped["pod"]))
    return {"pod": new_pod.as_dict(), "workload": workload}


def _restart(cluster: ClusterConfig, hook: KubecostClusterHook, old: PodRef) -> tuple[PodRef, dict | None]:
    core = hook.core_v1
    workload = None
    if pod_uid(core, old.namespace, old.name) == old.uid:  # a retry after the restart took effect skips this
        owner = owning_workload(core, hook.apps_v1, old)
        stamp = restart_workload(hook.apps_v1, owner)
        workload = {**owner.as_dict(), "restarted_at": stamp}
        log.info("rollout restart of %s %s/%s", owner.kind, owner.namespace, owner.name)
    new_pod = wait_for_replacement(
        core, cluster.namespace, cluster.selector, cluster.container, old, RESTART_TIMEOUT_S
    )
    log.info("pod %s is Ready (replaced %s)", new_pod.name, old.name)
    return new_pod, workload


@refusals_fail_at_once
def post_check(ctx: dict, plan: dict, swapped: dict, verified: dict | None = None) -> dict:
    """The pod is Ready, the live dir is this run's staged tree (its marker), and the restored files are in
    place: sizes and sha256 against the snapshot, except files written after the swap (pod clock)."""
    ctx = RestoreContext.from_dict(ctx)
    swap = swapping.SwapResult.from_dict(swapped)
    cluster, hook = _cluster(ctx.cluster_id)
    core = hook.core_v1
    files = _source(cluster, ctx, verified).files
    target = _target(cluster, core, ctx)
    dirs = _dirs(target, ctx)
    swapped_at = swap.swapped_at
    if ctx.mode == REPLACE:
        swapped_at = pod_dirs.marked_at(core, target, dirs, dirs.live)
        if swapped_at is None:
            raise checking.PostCheckFailed(
                f"{dirs.live} in pod {target.pod.name} is not this run's staged tree "
                "(no marker): the snapshot is not in place"
            )
    expected = [e for e in _files_to_write(files, ctx, plan) if e.path not in set(swap.skipped)]
    report = checking.check_restored(
        core,
        target,
        expected,
        datetime.now(UTC),
        cluster.hourly_hours,
        swapped_at,
        cluster.backup.batch_files,
        report_extra=ctx.mode == REPLACE,
    )
    log.info("post-check passed: %s", report)
    return report.as_dict()


@refusals_fail_at_once
def finish(ctx: dict, checked: dict | None, swapped: dict | None) -> dict:
    """Teardown: keep the restore if the post-check passed, else put the previous data back.

    Whatever fails here (the config, the pod lookup, a debug container, an exec), the error names
    the commands that put the previous data back by hand.
    """
    ctx = RestoreContext.from_dict(ctx)
    if ctx.dry_run:
        return {"outcome": "dry run", "actions": []}
    target = ctx.target
    dirs = ctx.dirs
    try:
        cluster, hook = _cluster(ctx.cluster_id)
        core = hook.core_v1
        target = _target(cluster, core, ctx, ready=False)
        dirs = _dirs(target, ctx)
        if checked and checked.get("ok"):
            removed = swapping.finish(core, target, dirs)
            log.info("restore of %s complete; %s", ctx.snapshot_id, removed or "nothing left to remove")
            return {"outcome": "restored", "actions": removed}
        rolled = swapping.roll_back(core, target, dirs)
        actions = rolled["actions"]
        restarted_since_swap = swapped is not None and target.pod.uid != swapped["pod"]["uid"]
        if rolled["put_back"] and restarted_since_swap:
            new_pod, _ = _restart(
                cluster, hook, target.pod
            )  # Kubecost loaded the restored files: reload the old
            actions.append(f"restarted Kubecost again ({new_pod.name}) to reload the previous data")
    except Exception as exc:
        raise RuntimeError(
            f"finishing the restore failed ({exc}); to put the previous ETL data back by hand: "
            f"{dirs.manual_rollback(target.pod.namespace, target.pod.name, target.container)}"
        ) from exc
    outcome = "rolled back" if rolled["put_back"] else "cleaned up"
    log.warning(
        "restore of %s did not complete: %s; %s", ctx.snapshot_id, outcome, actions or "nothing to undo"
    )
    return {"outcome": outcome, "actions": actions}
