"""kubecost_etl_backup: stream each cluster's Kubecost ETL cache to object storage, then verify it.

One run backs up every configured cluster (or those named when triggering); each cluster is a
mapped task group, so one cluster failing neither stops nor hides the others.
Stages: find_pod -> plan -> stream -> commit -> verify, then one report over all clusters.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, Param, chain, dag, get_current_context, task, task_group
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.schedule import backup_schedule

SNAPSHOTS = AssetAlias("kubecost_etl_snapshots")


def _stages():
    """The stage code, imported when a task runs: parsing this file stays cheap (no client libraries)."""
    from kubecost_etl.airflow.stages import backup

    return backup


def _label(cluster_id: str) -> None:
    get_current_context()["cluster_id"] = cluster_id  # shown as the map index in the UI


def _cluster_task(**kwargs):
    return task(map_index_template="{{ cluster_id }}", **kwargs)


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
        "clusters": Param([], type="array", items={"type": "string"},
                          description="Cluster ids to back up; empty means every configured cluster."),
        "full_verify": Param(False, type="boolean",
                             description="Download and re-hash every object instead of a rotating sample."),
    },
)
def kubecost_etl_backup():
    @task
    def select_clusters(params=None) -> list[str]:
        return _stages().select_clusters(params["clusters"])

    @task_group
    def backup_cluster(cluster_id: str):
        @_cluster_task()
        def find_pod(cluster_id: str) -> dict:
            _label(cluster_id)
            return _stages().find_pod(cluster_id)

        @_cluster_task()
        def plan(cluster_id: str, target: dict) -> dict:
            _label(cluster_id)
            return _stages().plan(cluster_id, target)

        @_cluster_task(execution_timeout=timedelta(hours=3))
        def stream(cluster_id: str, target: dict, plan: dict) -> dict:
            _label(cluster_id)
            return _stages().stream(cluster_id, target, plan)

        @_cluster_task()
        def commit(cluster_id: str, target: dict, plan: dict, streamed: dict) -> str:
            _label(cluster_id)
            return _stages().commit(cluster_id, target, plan, streamed)

        @_cluster_task(outlets=[SNAPSHOTS])
        def verify(cluster_id: str, snapshot_id: str, params=None, outlet_events=None) -> dict:
            _label(cluster_id)
            result = _stages().verify(cluster_id, snapshot_id, params["full_verify"])
            # Only a verified snapshot is announced: downstream DAGs may schedule on it.
            outlet_events[SNAPSHOTS].add(_stages().snapshot_asset(cluster_id), extra={"snapshot_id": snapshot_id})
            return result

        target = find_pod(cluster_id)
        the_plan = plan(cluster_id, target)
        streamed = stream(cluster_id, target, the_plan)
        snapshot_id = commit(cluster_id, target, the_plan, streamed)
        return verify(cluster_id, snapshot_id)

    # The run's leaf: it must fail whenever anything failed, or the run would show green. No alert
    # of its own: its failure always follows a task that has alerted already. Never retried: it only
    # reads what the other tasks left, so a retry would say the same thing minutes later.
    @task(trigger_rule="all_done", on_failure_callback=None, retries=0)
    def report(cluster_ids: list[str] | None, ti=None) -> dict:
        if cluster_ids is None:
            raise _stages().BackupFailed("no clusters were selected: see select_clusters")
        # Pulled by explicit map index: one entry per cluster, None where that cluster failed.
        results = ti.xcom_pull(task_ids="backup_cluster.verify", map_indexes=range(len(cluster_ids)))
        return _stages().report(cluster_ids, results)

    cluster_ids = select_clusters()
    chain(backup_cluster.expand(cluster_id=cluster_ids), report(cluster_ids))


kubecost_etl_backup()
