"""kubecost_etl_federate: push each cluster's ETL files, raw, into Kubecost's federated bucket layout.

`[<prefix>/]federated/<cluster id>/etl/bingen/...` (or the durable layout `[<prefix>/]etl/bingen/...`),
incrementally (only files whose size, mtime or sha256 differ from the object's metadata), then verified.
Scheduled every 10 minutes by default (`federate_schedule`), or triggered with `clusters`.
Per cluster: find_pod -> plan -> push -> verify -> retention, then one report over all clusters.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, Param, chain, dag, get_current_context, task, task_group
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.schedule import federate_schedule

FEDERATED = AssetAlias("kubecost_federated")


def _stages():
    """The stage code, imported when a task runs: parsing this file stays cheap (no client libraries)."""
    from kubecost_etl.airflow.stages import federate

    return federate


def _label(cluster_id: str) -> None:
    get_current_context()["cluster_id"] = cluster_id  # shown as the map index in the UI


def _cluster_task(**kwargs):
    return task(map_index_template="{{ cluster_id }}", **kwargs)


@dag(
    dag_id="kubecost_etl_federate",
    schedule=federate_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # never two pushes into the same prefix at once
    dagrun_timeout=timedelta(hours=2),
    tags=["kubecost", "federation"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "clusters": Param([], type="array", items={"type": "string"},
                          description="Cluster ids to federate; empty means every cluster with a federated block."),
        "full_verify": Param(False, type="boolean",
                             description="Re-download and re-hash every object instead of a rotating sample."),
    },
)
def kubecost_etl_federate():
    @task
    def select_clusters(params=None) -> list[str]:
        return _stages().select_clusters(params["clusters"])

    @task_group
    def federate_cluster(cluster_id: str):
        # The per-cluster lease (issue 10, branch lease10) goes here once it is on main: acquired as a
        # setup task before find_pod and released by a teardown after retention, as in the backup DAG.

        @_cluster_task()
        def find_pod(cluster_id: str) -> dict:
            _label(cluster_id)
            return _stages().find_pod(cluster_id)

        @_cluster_task()
        def plan(cluster_id: str, target: dict) -> dict:
            _label(cluster_id)
            return _stages().plan(cluster_id, target)

        @_cluster_task(execution_timeout=timedelta(hours=1))
        def push(cluster_id: str, target: dict, plan: dict) -> dict:
            _label(cluster_id)
            return _stages().push(cluster_id, target, plan)

        @_cluster_task(outlets=[FEDERATED])
        def verify(cluster_id: str, target: dict, plan: dict, pushed: dict, params=None,
                   outlet_events=None) -> dict:
            _label(cluster_id)
            result = _stages().verify(cluster_id, target, plan, pushed, params["full_verify"])
            outlet_events[FEDERATED].add(_stages().federated_asset(cluster_id),
                                         extra={"objects": result["objects"], "pushed": len(pushed["pushed"])})
            return result

        @_cluster_task()
        def retention(cluster_id: str) -> dict:
            _label(cluster_id)
            return _stages().retention(cluster_id)

        target = find_pod(cluster_id)
        the_plan = plan(cluster_id, target)
        pushed = push(cluster_id, target, the_plan)
        retained = retention(cluster_id)
        chain(verify(cluster_id, target, the_plan, pushed), retained)  # deletes only after a verified copy
        return retained  # the group's last task: the report waits for it

    @task(trigger_rule="all_done", on_failure_callback=None)
    def report(cluster_ids: list[str] | None, ti=None) -> dict:
        if cluster_ids is None:
            raise _stages().FederationFailed("no clusters were selected: see select_clusters")
        # Pulled by explicit map index: one entry per cluster, None where that cluster failed.
        indexes = range(len(cluster_ids))
        results = ti.xcom_pull(task_ids="federate_cluster.verify", map_indexes=indexes)
        retained = ti.xcom_pull(task_ids="federate_cluster.retention", map_indexes=indexes)
        return _stages().report(cluster_ids, results, retained)

    cluster_ids = select_clusters()
    chain(federate_cluster.expand(cluster_id=cluster_ids), report(cluster_ids))


kubecost_etl_federate()
