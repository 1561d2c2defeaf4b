"""kubecost_etl_federate: push each cluster's ETL files, raw, into Kubecost's federated bucket layout.

`[<prefix>/]federated/<cluster id>/etl/bingen/...` (or the durable layout `[<prefix>/]etl/bingen/...`),
incrementally (only files whose size, mtime or sha256 differ from the object's metadata), then verified.
Scheduled every 10 minutes by default (`federate_schedule`), or triggered with `clusters`.
Per cluster: acquire_lease -> plan (finds the pod first) -> push -> verify -> retention -> release_lease,
then one report over all clusters. The cluster's lease is the one backup, repair and restore take.
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
from kubecost_etl.airflow.schedule import federate_schedule
from kubecost_etl.airflow.sensors.lease import ClusterLeaseSensor

FEDERATED = AssetAlias("kubecost_federated")


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
        "clusters": clusters_param("federate", "every cluster with a federated block"),
        "full_verify": Param(
            False,
            type="boolean",
            description="Re-download and re-hash every object instead of a rotating sample.",
        ),
    },
)
def kubecost_etl_federate():
    @task_group
    def federate_cluster(cluster_id: str):
        # Finds the pod, then lists what differs from the bucket: "target" and "plan".
        @cluster_task(multiple_outputs=True)
        def plan(cluster_id: str, lease: dict) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("federate").find_and_plan(cluster_id)

        @cluster_task(execution_timeout=timedelta(hours=1))
        def push(cluster_id: str, target: dict, plan: dict, lease: dict) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("federate").push(cluster_id, target, plan)

        @cluster_task(outlets=[FEDERATED])
        def verify(
            cluster_id: str,
            target: dict,
            plan: dict,
            pushed: dict,
            lease: dict,
            params=None,
            outlet_events=None,
        ) -> dict:
            from kubecost_etl.federation.push import PushResult
            from kubecost_etl.federation.verify import VerifyReport

            label(cluster_id)
            with held(cluster_id, lease):
                result = stages("federate").verify(cluster_id, target, plan, pushed, params["full_verify"])
            extra = {
                "objects": VerifyReport.from_dict(result).objects,
                "pushed": len(PushResult.from_dict(pushed).pushed),
            }
            outlet_events[FEDERATED].add(stages("federate").federated_asset(cluster_id), extra=extra)
            return result

        @cluster_task()
        def retention(cluster_id: str, lease: dict) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("federate").retention(cluster_id)

        acquire = ClusterLeaseSensor(task_id="acquire_lease", cluster=cluster_id)
        lease = acquire.output
        planned = plan(cluster_id, lease)
        target, the_plan = planned["target"], planned["plan"]
        pushed = push(cluster_id, target, the_plan, lease)
        retained = retention(cluster_id, lease)
        # retention deletes only after a verified copy
        chain(
            acquire,
            planned,
            verify(cluster_id, target, the_plan, pushed, lease),
            retained,
            release_lease(cluster_id, lease).as_teardown(setups=acquire),
        )
        return retained  # the report waits for it

    # Never retried: it only reads what the other tasks left, so a retry would say the same thing later.
    @task(trigger_rule="all_done", on_failure_callback=None, retries=0)
    def report(cluster_ids: list[str] | None, ti=None) -> dict:
        if cluster_ids is None:
            raise stages("federate").FederationFailed("no clusters were selected: see select_clusters")
        # Pulled by explicit map index: one entry per cluster, None where that cluster failed.
        indexes = range(len(cluster_ids))
        results = ti.xcom_pull(task_ids="federate_cluster.verify", map_indexes=indexes)
        retained = ti.xcom_pull(task_ids="federate_cluster.retention", map_indexes=indexes)
        return stages("federate").report(cluster_ids, results, retained)

    cluster_ids = select_clusters("federate")()
    chain(federate_cluster.expand(cluster_id=cluster_ids), report(cluster_ids))


kubecost_etl_federate()
