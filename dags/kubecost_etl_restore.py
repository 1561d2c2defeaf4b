"""kubecost_etl_restore: put a chosen snapshot back into the cost-analyzer pod without risking the live data.

Manual only. Params: `cluster`, `source`, `snapshot` (an id, or `latest`: the newest verified snapshot made
before this run was triggered), `mode`, `restart`, `dry_run`.

- `source: snapshot` (default) restores a snapshot of the backup repository; `federated` or `durable`
  restores the cluster's federated mirror (`[<prefix>/]federated/<cluster id>/etl/bingen/...` or
  `[<prefix>/]etl/bingen/...` in the store of its `federated:` block): the listing is pinned by preflight,
  and verify_snapshot reads and re-hashes every object (sizes, metadata sha256, bingen headers) before
  anything touches the pod. Everything after it is the same path.

- `replace`: the ETL dir becomes exactly the snapshot (staged next to it, checked, swapped in by
  two renames; the previous dir is kept until the post-check passes).
- `fill-missing`: only files the pod lacks are written (no-clobber moves); nothing existing is touched.

Tasks: preflight -> acquire_lease (the cluster's lease, shared with backup and repair; waits without a
worker slot while another pipeline holds it) -> verify_snapshot (every object downloaded and re-hashed)
-> plan (logs every change; a dry run stops here) -> stage -> check_staged -> safety_backup (of the
pod's data right before the swap, so Kubecost has the least time to write after it; skipped only when
the ETL dir is proven missing or empty) -> swap -> restart (rollout; default on for replace) ->
post_check -> finish -> release_lease.
`finish` is the run's teardown (its setup is verify_snapshot): once the snapshot verified it runs
whatever failed, also when the run is marked failed or success by hand. It keeps the restore only
if the post-check passed; otherwise it removes the staging dir and, if the swap happened, puts the
previous dir back (and restarts Kubecost again if it had been restarted). Stages are safe to
retry: each looks at what exists in the pod first. Every stage after acquire_lease checks and renews
the lease; release_lease (a teardown after finish) always gives it back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import Param, chain, dag, task
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.sensors.lease import ClusterLeaseSensor
from kubecost_etl.restore.modes import MODES, SOURCES

log = logging.getLogger(__name__)
LONG = timedelta(hours=3)  # verify and stage move the whole snapshot


def _stages():
    """The stage code, imported when a task runs: parsing this file stays cheap (no client libraries)."""
    from kubecost_etl.airflow.stages import restore

    return restore


def _held(ctx: dict, lease: dict):
    """The stage runs only while this run holds the cluster's lease, and renews it meanwhile."""
    from kubecost_etl.airflow.lease import lease_held

    return lease_held(ctx["cluster_id"], lease)


@dag(
    dag_id="kubecost_etl_restore",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # one restore at a time: a run may remove staging dirs that earlier runs left
    tags=["kubecost", "restore"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "cluster": Param(
            "",
            type="string",
            description="Cluster id from the configuration; empty means the only configured cluster.",
        ),
        "source": Param(
            "snapshot",
            type="string",
            enum=list(SOURCES),
            description="snapshot: a snapshot of the backup repository. federated / durable: the "
            "cluster's federated mirror in that layout (verified before the pod is touched).",
        ),
        "snapshot": Param(
            "latest",
            type="string",
            minLength=1,
            description="Snapshot id, or 'latest': the newest verified snapshot before this run "
            "(source snapshot only).",
        ),
        "mode": Param(
            "replace",
            type="string",
            enum=list(MODES),
            description="replace: the ETL dir becomes exactly the snapshot. "
            "fill-missing: only files absent from the pod are written.",
        ),
        "restart": Param(
            None,
            type=["boolean", "null"],
            description="Roll the deployment afterwards so Kubecost reloads; empty means on for replace.",
        ),
        "dry_run": Param(False, type="boolean", description="Only log exactly what would change."),
    },
)
def kubecost_etl_restore():
    @task
    def preflight(params=None, run_id=None, dag_run=None) -> dict:
        return _stages().preflight(
            params["cluster"],
            params["snapshot"],
            params["mode"],
            params["restart"],
            params["dry_run"],
            run_id,
            dag_run.run_after,
            source=params.get("source") or "snapshot",
        )

    @task(execution_timeout=LONG)
    def verify_snapshot(ctx: dict, lease: dict) -> dict:
        with _held(ctx, lease):
            return _stages().verify_snapshot(ctx)

    # plan, stage, check_staged and post_check take verify_snapshot's result: for a mirror it is the
    # verified listing they write and check (a snapshot's stages re-read its pinned manifest instead).
    @task
    def plan(ctx: dict, verified: dict, lease: dict) -> dict:
        with _held(ctx, lease):
            return _stages().plan(ctx, verified=verified)

    @task.short_circuit(ignore_downstream_trigger_rules=True)  # the teardown still runs (and does nothing)
    def apply_changes(ctx: dict) -> bool:
        if ctx["dry_run"]:
            log.info("dry run: the plan above is what would change; nothing was changed")
        return not ctx["dry_run"]

    @task(execution_timeout=LONG)
    def safety_backup(ctx: dict, plan: dict, lease: dict) -> dict:
        with _held(ctx, lease):  # the backup runs under this restore's lease (no second acquisition)
            return _stages().safety_backup(ctx, plan)

    @task(execution_timeout=LONG)
    def stage(ctx: dict, plan: dict, verified: dict, lease: dict) -> dict:
        with _held(ctx, lease):
            return _stages().stage(ctx, plan, verified=verified)

    @task
    def check_staged(ctx: dict, plan: dict, staged: dict, verified: dict, lease: dict) -> dict:
        with _held(ctx, lease):
            return _stages().check_staged(ctx, plan, staged, verified=verified)

    # swap and post_check pull the lease rather than take it as an argument: a setup's direct
    # downstream tasks must keep the all_success rule, and these two run after a skipped task.
    @task(trigger_rule="none_failed_min_one_success")  # runs after a skipped safety backup
    def swap(ctx: dict, plan: dict, ti=None) -> dict:
        with _held(ctx, ti.xcom_pull(task_ids="acquire_lease")):
            return _stages().swap(ctx, plan)

    @task
    def restart(ctx: dict, swapped: dict, lease: dict) -> dict:
        with _held(ctx, lease):
            return _stages().restart(ctx, swapped)

    @task(trigger_rule="none_failed_min_one_success")  # runs after a skipped restart
    def post_check(ctx: dict, plan: dict, swapped: dict, ti=None) -> dict:
        with _held(ctx, ti.xcom_pull(task_ids="acquire_lease")):
            return _stages().post_check(ctx, plan, swapped, verified=ti.xcom_pull(task_ids="verify_snapshot"))

    @task
    def finish(ctx: dict, lease: dict, ti=None) -> dict:
        # Pulled, not passed: after a failure these tasks have no result, and that is the point.
        with _held(ctx, lease):  # if another pipeline took the lease over, it must not be raced
            return _stages().finish(ctx, ti.xcom_pull(task_ids="post_check"), ti.xcom_pull(task_ids="swap"))

    @task(retries=3)
    def release_lease(ctx: dict, lease: dict | None = None, **context) -> str:
        from kubecost_etl.airflow.lease import release

        return release(ctx["cluster_id"], lease, context)

    ctx = preflight()
    acquire = ClusterLeaseSensor(task_id="acquire_lease", cluster=ctx)
    lease = acquire.output
    verified = verify_snapshot(ctx, lease)  # the setup: nothing touches the pod before it passes
    the_plan = plan(ctx, verified, lease)
    staged = stage(ctx, the_plan, verified, lease)
    swapped = swap(ctx, the_plan)
    chain(
        acquire,
        verified,
        the_plan,
        apply_changes(ctx),
        staged,
        check_staged(ctx, the_plan, staged, verified, lease),
        safety_backup(ctx, the_plan, lease),  # as late as possible: right before the swap
        swapped,
        restart(ctx, swapped, lease),
        post_check(ctx, the_plan, swapped),
        finish(ctx, lease).as_teardown(setups=verified),
        release_lease(ctx, lease).as_teardown(setups=acquire),
    )


kubecost_etl_restore()
