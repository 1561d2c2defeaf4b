"""kubecost_etl_prune: retention for each cluster's backups, without ever losing the last good one.

Scheduled daily (`prune_schedule` in the configuration) and triggerable with `clusters` (empty:
every cluster with a `retention:` policy) and `dry_run` (report exactly what would go; delete
nothing). Each cluster is a mapped task group, so one cluster failing neither stops nor hides the
others: acquire_lease (the cluster's lease, shared with backup, repair, restore and other Airflow
deployments; waits without a worker slot) -> forget (phase 1: the policy decides, forgotten
manifests are deleted, then their verification records) -> collect (phase 2: objects no remaining
manifest names and older than `gc_safety_margin`, stale records, unfinished uploads) ->
release_lease (a teardown that always runs) and report (a table in the log, the
`PruneReport` as the task's value, an Asset event `kubecost-etl://<cluster>/prune` unless a dry
run). The newest verified snapshot is always kept; see the README's "Retention" section.
"""

from __future__ import annotations

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
from kubecost_etl.airflow.schedule import prune_schedule
from kubecost_etl.airflow.sensors.lease import ClusterLeaseSensor

PRUNES = AssetAlias("kubecost_etl_prune")


@dag(
    dag_id="kubecost_etl_prune",
    schedule=prune_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # never two prunes of the same cluster at once
    tags=["kubecost", "prune"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "clusters": clusters_param("prune", "every cluster with a retention policy"),
        "dry_run": Param(
            False,
            type="boolean",
            description="List exactly what would be forgotten and deleted; delete nothing.",
        ),
    },
)
def kubecost_etl_prune():
    @task_group
    def prune_cluster(cluster_id: str):
        @cluster_task()
        def forget(cluster_id: str, lease: dict, params=None) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("prune").forget(cluster_id, params["dry_run"])

        # Still under the lease: a backup's plan may reuse an old unreferenced object (no age protects
        # that); the margin protects against writers the lease cannot stop (README, "Retention").
        @cluster_task()
        def collect(cluster_id: str, forgotten: dict, lease: dict, params=None) -> dict:
            label(cluster_id)
            with held(cluster_id, lease):
                return stages("prune").collect(cluster_id, forgotten, params["dry_run"])

        @cluster_task(outlets=[PRUNES])
        def report(cluster_id: str, forgotten: dict, collected: dict, outlet_events=None) -> dict:
            label(cluster_id)
            from kubecost_etl.prune.gc import PruneReport

            result = stages("prune").report(cluster_id, forgotten, collected)
            pruned = PruneReport.from_dict(result)
            if not pruned.dry_run:  # a dry run changed nothing: nothing to announce
                outlet_events[PRUNES].add(
                    stages("prune").prune_asset(cluster_id),
                    extra={
                        "forgotten": [d.snapshot_id for d in pruned.forgotten],
                        "objects_deleted": pruned.objects_deleted,
                        "bytes_deleted": pruned.bytes_deleted,
                        "bytes_remaining": pruned.bytes_remaining,
                    },
                )
            return result

        acquire = ClusterLeaseSensor(task_id="acquire_lease", cluster=cluster_id)
        lease = acquire.output
        forgotten = forget(cluster_id, lease)
        collected = collect(cluster_id, forgotten, lease)
        # Federated mirror retention (federated.retention, the federation issue) joins here as its own
        # task per cluster under the same lease, feeding report() through PruneReport.extensions.
        result = report(cluster_id, forgotten, collected)
        chain(acquire, forgotten, collected, release_lease(cluster_id, lease).as_teardown(setups=acquire))
        return result

    # The run's leaf: it fails whenever anything failed, so a partly failed run never shows green.
    # Never retried: it only reads what the other tasks left, so a retry would say the same thing later.
    @task(trigger_rule="all_done", on_failure_callback=None, retries=0)
    def summary(cluster_ids: list[str] | None, ti=None) -> dict:
        if cluster_ids is None:
            raise stages("prune").PruneFailed("no clusters were selected: see select_clusters")
        # Pulled by explicit map index: one entry per cluster, None where that cluster failed.
        results = ti.xcom_pull(task_ids="prune_cluster.report", map_indexes=range(len(cluster_ids)))
        return stages("prune").summary(cluster_ids, results)

    cluster_ids = select_clusters("prune")()
    chain(prune_cluster.expand(cluster_id=cluster_ids), summary(cluster_ids))


kubecost_etl_prune()
