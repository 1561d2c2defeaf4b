"""kubecost_etl_repair: rebuild a window of Kubecost's ETL safely, one step after the other.

Manual only. Trigger with ``{"cluster": "prod-east", "window": "2026-01-01T00:00:00Z,2026-01-04T00:00:00Z"}``
(``profile`` v1 or v2, ``provider``, ``backup_first``, ``dry_run``, ``allow_partial_days`` optional).

preflight (window, cluster, Prometheus retention, and the metrics Prometheus really holds for every
day of the window: nothing is sent before these pass) -> acquire_lease (the cluster's lease, shared
with backup and restore; waits without a worker slot while another pipeline holds it) -> backup
(under the repair's own lease)
(the backup pipeline's own code, so a bad repair can be undone) -> the profile's chain, each step a
request (one repair call, answer checked) and a deferrable sensor that follows the cost-model log
until every day (and hour) of the window is rebuilt -> summary -> release_lease (a teardown: always).

Both profiles' chains are drawn: the profile is chosen when the run is triggered, while a DAG's
shape is fixed when its file is parsed. ``choose_steps`` branches into the chosen profile's chain;
the other chain shows as skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, TaskGroup, chain, dag, task
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.sensors.lease import ClusterLeaseSensor
from kubecost_etl.airflow.sensors.repair_log import RepairLogSensor
from kubecost_etl.repair.profiles import DEFAULT_PROFILE, PROFILES, request_task_id, wait_task_id


def _stages():
    """The stage code, imported when a task runs: parsing this file stays cheap (no client libraries)."""
    from kubecost_etl.airflow.stages import repair

    return repair


def _cluster_id(plan: dict) -> str:
    from kubecost_etl.repair.plan import RepairPlan

    return RepairPlan.from_dict(plan).cluster_id


def _held(plan: dict, lease: dict):
    """The stage runs only while this run holds the cluster's lease, and renews it meanwhile."""
    from kubecost_etl.airflow.lease import lease_held

    return lease_held(_cluster_id(plan), lease)


@dag(
    dag_id="kubecost_etl_repair",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two repairs at once would interleave in one cost-model log
    tags=["kubecost", "repair"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "cluster": Param(
            None,
            type=["null", "string"],
            description="Configured cluster id; may stay empty when only one cluster is configured.",
        ),
        "window": Param(
            None,
            type=["null", "string"],
            description="Kubecost window: 2026-01-01T00:00:00Z,2026-01-04T00:00:00Z (UTC, 'Z', whole "
            "seconds), unix seconds S,E, or relative: yesterday, today, 3d, week...",
        ),
        "profile": Param(
            DEFAULT_PROFILE,
            enum=sorted(PROFILES),
            description="; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()),
        ),
        "provider": Param(
            None,
            type=["null", "string"],
            description="Cloud integration key for CloudUsage/Reconciliation; empty means all.",
        ),
        "backup_first": Param(
            True, type="boolean", description="Back the cluster's ETL up before repairing."
        ),
        "dry_run": Param(
            False, type="boolean", description="Check and plan only: no backup, no repair call."
        ),
        "allow_partial_days": Param(
            [],
            type=["null", "array"],
            items={"type": "string", "pattern": r"^\d{4}-\d\d-\d\d$"},
            description="Days (YYYY-MM-DD, UTC) to repair although Prometheus lacks metrics for some "
            "of their hours: the preflight refuses them otherwise. Logged and named in the summary.",
        ),
    },
)
def kubecost_etl_repair():
    @task(retries=0)
    def preflight(params=None) -> dict:
        return _stages().preflight(dict(params))

    @task(execution_timeout=timedelta(hours=3))
    def backup(plan: dict, lease: dict) -> dict:
        with _held(plan, lease):  # the backup pipeline's stages, under the repair's own lease
            return _stages().backup(plan)

    @task.branch(trigger_rule="none_failed")  # runs after a skipped backup too
    def choose_steps(plan: dict) -> str | None:
        return _stages().choose_steps(plan)

    @task
    def request_step(plan: dict, step_name: str, lease: dict) -> dict:
        from kubecost_etl.airflow.lease import extend_lease
        from kubecost_etl.repair.steps import RepairWatch

        with _held(plan, lease):
            watch = _stages().request_step(plan, step_name)
        # Kubecost now rebuilds on its own while the sensor waits in the triggerer: the lease covers that.
        deadline = RepairWatch.from_dict(watch).deadline
        extend_lease(_cluster_id(plan), lease, datetime.fromtimestamp(deadline, UTC))
        return watch

    # The run's leaf fails only after a failed task, which has alerted already: no second alert.
    @task(trigger_rule="all_done", retries=0, on_failure_callback=None)
    def summary(plan, results: dict) -> dict:
        from kubecost_etl.repair.plan import RepairPlan

        return _stages().summary(plan, results[RepairPlan.from_dict(plan).profile] if plan else [])

    @task(retries=3)
    def release_lease(plan: dict, lease: dict | None = None, **context) -> str:
        from kubecost_etl.airflow.lease import release

        return release(_cluster_id(plan), lease, context)

    plan = preflight()
    acquire = ClusterLeaseSensor(task_id="acquire_lease", cluster=plan)
    lease = acquire.output
    route = choose_steps(plan)
    chain(acquire, backup(plan, lease), route)
    results: dict[str, list] = {}
    for name, profile in PROFILES.items():  # every profile drawn; choose_steps enters the one asked for
        with TaskGroup(group_id=name, tooltip=profile.description):
            steps = []
            for step in profile.steps:
                request = request_step.override(task_id=request_task_id(step.name))(plan, step.name, lease)
                steps += [request, RepairLogSensor(task_id=wait_task_id(step.name), watch=request, retries=0)]
            chain(route, *steps)
            results[name] = [wait.output for wait in steps[1::2]]
    chain(summary(plan, results), release_lease(plan, lease).as_teardown(setups=acquire))


kubecost_etl_repair()
