"""kubecost_etl_share: one gzip tarball of a window of a cluster's ETL cache, in the layout Kubecost's
``upload-etl.sh`` unpacks, for a support engineer or another cluster; with a time-limited download link.

Manual only. Trigger with ``{"cluster": "prod-east", "window": "7d", "source": "latest"}``
(``window`` empty = everything; ``source`` ``pod``, ``latest`` or a snapshot id; ``pipelines`` and
``resolutions`` narrow it, default all).

preflight (cluster, window with the repair's rules, source, selection: nothing written before these
pass) -> bundle (the files streamed from the pod or the repository straight into the share store as
``kubecost-etl-share/<cluster>/<bundle id>/kubecost-etl.tar.gz``, then ``manifest.json``; prints its
size, sha256, file and day counts and the download link).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, chain, dag, task
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.dag_parts import cluster_param, stages


@dag(
    dag_id="kubecost_etl_share",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # one bundle at a time: each reads the pod or the repository whole
    tags=["kubecost", "share"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "cluster": cluster_param(),
        "window": Param(
            "",
            type=["null", "string"],
            description="Kubecost window (7d, yesterday, S,E, 2026-01-01T00:00:00Z,2026-01-04T00:00:00Z); "
            "empty means everything. A file is carried when its [start, end) overlaps it.",
        ),
        "source": Param(
            "latest",
            type="string",
            minLength=1,
            description="pod (the live data), latest (the newest verified snapshot) or a snapshot id.",
        ),
        "pipelines": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Pipeline folders to carry (allocations, assets...); empty means all.",
        ),
        "resolutions": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Resolution folders to carry (1d, 1h...); empty means all.",
        ),
    },
)
def kubecost_etl_share():
    @task  # a refusal fails at once (AirflowFailException); a pod or store hiccup is retried
    def preflight(params=None, dag_run=None) -> dict:
        return stages("share").preflight(
            params["cluster"],
            params["window"],
            params["source"],
            params["pipelines"],
            params["resolutions"],
            dag_run.run_after,
        )

    @task(execution_timeout=timedelta(hours=3))
    def bundle(request: dict) -> dict:
        return stages("share").bundle(request)

    request = preflight()
    chain(request, bundle(request))


kubecost_etl_share()
