"""kubecost_etl_health: is every cluster's cost history safe right now? Alerts once, fills gaps from backup.

Hourly by default (`health.schedule`). Every run:

- check_config: the configuration is loaded and checked; a broken one alerts (once, until fixed) and
  fails the run, even when the other DAGs cannot load.
- per cluster (mapped) check_cluster: staleness (no verified snapshot newer than
  `health.max_backup_age`, default 26h), files of the latest verified snapshot missing from the
  pod, days missing in the pod's daily stores, hourly coverage under the cluster's `hourly_hours`;
  an unreachable bucket or pod is a condition too.
- per cluster alert: one message per new condition and one when it clears, through the configured
  notifier; a condition already alerted stays quiet (state in the Variable `kubecost_etl_health__<cluster>`).
- fill_requests -> auto_fill: with `health.auto_fill: true`, a cluster that lost files gets a
  `kubecost_etl_restore` run in mode `fill-missing` of the snapshot it was compared with (only the
  missing files are written; no restart unless `health.restart`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import chain, dag, get_current_context, task
from kubecost_etl.airflow.dag_defaults import START_DATE
from kubecost_etl.health.settings import health_schedule


def _stages():
    from kubecost_etl.airflow.stages import health

    return health


@dag(
    dag_id="kubecost_etl_health",
    schedule=health_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    tags=["kubecost", "health"],
    doc_md=__doc__,
    # No failure callback: this DAG's alerts are its own, deduplicated; a callback would repeat them hourly.
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
)
def kubecost_etl_health():
    @task(retries=0)  # a broken configuration is not fixed by a retry
    def check_config() -> list[str]:
        return _stages().check_config(get_current_context())

    @task(execution_timeout=timedelta(minutes=15))
    def check_cluster(cluster_id: str) -> dict:
        return _stages().check_cluster(cluster_id)

    @task
    def alert(report: dict) -> dict:
        return _stages().alert(report, get_current_context())

    @task
    def fill_requests(reports: list[dict], run_id=None) -> list[dict]:
        return _stages().fill_requests(list(reports), run_id)

    clusters = check_config()
    reports = check_cluster.expand(cluster_id=clusters)
    alerted = alert.expand(report=reports)
    requests = fill_requests(reports)

    @task
    def auto_fill(request: dict) -> None:
        _stages().auto_fill(request, get_current_context())

    filled = auto_fill.expand(request=requests)
    chain(clusters, reports, alerted, requests, filled)


kubecost_etl_health()
