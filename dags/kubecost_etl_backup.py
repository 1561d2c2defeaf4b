"""kubecost_etl_backup: stream each cluster's Kubecost ETL cache to object storage, then verify it.

One run backs up every configured cluster (or those named when triggering); each cluster is a
mapped task group, so one cluster failing neither stops nor hides the others.
Stages: acquire_lease -> plan (finds the pod first) -> stream -> commit -> verify -> release_lease, then one
report over all clusters. The cluster's lease (shared with repair, restore and other Airflow
deployments) is held from acquire_lease to the release_lease teardown; each stage checks and renews it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, Param, chain, dag, task, task_group
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.dag_parts import (
    cluster_task,
    clusters_param,
    held,
    label,
    release_lease,
    select_clusters,
    stages,
)
from kubecost_etl.airflow.schedule import backup_schedule
from kubecost_etl.airflow.sensors.lease import ClusterLeaseSensor

SNAPSHOTS = AssetAlias("kubecost_etl_snapshots")


@dag(
    dag_id="kubecost_etl_backup",
    schedule=backup_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # never two backups of the same cluster at once
    tags=["kubecost", "backup"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "clusters": clusters_param("back up", "every configured cluster"),
        "full_verify": Param(
            False,
            type="boolean",
            description="Download and re-hash every object instead of a rotating sample.",
        ),
    },
)
def kubecost_etl_backup():
    @task_group
    def backup_cluster(cluster_id: str):
        # Finds the pod (or the federated copy), then lists what changed: "target" and "plan".
        @cluster_task(multiple_outputs=True)
        def plan(cluster_id: str, lease: dict) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("backup").find_and_plan(cluster_id)

        @cluster_task(execution_timeout=timedelta(hours=3))
        def stream(cluster_id: str, target: dict, plan: dict, lease: dict) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("backup").stream(cluster_id, target, plan)

        @cluster_task()
        def commit(cluster_id: str, target: dict, plan: dict, streamed: dict, lease: dict) -> str:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("backup").commit(cluster_id, target, plan, streamed)

        @cluster_task(outlets=[SNAPSHOTS])
        def verify(cluster_id: str, snapshot_id: str, lease: dict, params=None, outlet_events=None) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                result = stages("backup").verify(cluster_id, snapshot_id, params["full_verify"])
            # Only a verified snapshot is announced: downstream DAGs may schedule on it.
            outlet_events[SNAPSHOTS].add(
                stages("backup").snapshot_asset(cluster_id), extra={"snapshot_id": snapshot_id}
            )
            return result

        acquire = ClusterLeaseSensor(task_id="acquire_lease", cluster=cluster_id)
        lease = acquire.output
        planned = plan(cluster_id, lease)
        target, the_plan = planned["target"], planned["plan"]
        streamed = stream(cluster_id, target, the_plan, lease)
        snapshot_id = commit(cluster_id, target, the_plan, streamed, lease)
        verified = verify(cluster_id, snapshot_id, lease)
        chain(acquire, planned, verified, release_lease(cluster_id, lease).as_teardown(setups=acquire))

    # The run's leaf: it must fail whenever anything failed, or the run would show green. No alert
    # of its own: its failure always follows a task that has alerted already. Never retried: it only
    # reads what the other tasks left, so a retry would say the same thing minutes later.
    @task(trigger_rule="all_done", on_failure_callback=None, retries=0)
    def report(cluster_ids: list[str] | None, ti=None) -> dict:
        if cluster_ids is None:
            raise stages("backup").BackupFailed("no clusters were selected: see select_clusters")
        # Pulled by explicit map index: one entry per cluster, None where that cluster failed.
        results = ti.xcom_pull(task_ids="backup_cluster.verify", map_indexes=range(len(cluster_ids)))
        return stages("backup").report(cluster_ids, results)

    cluster_ids = select_clusters("backup")()
    chain(backup_cluster.expand(cluster_id=cluster_ids), report(cluster_ids))


kubecost_etl_backup()
