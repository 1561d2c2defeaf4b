"""kubecost_etl_import: a tarball in the backup bucket (Kubecost's ``download-etl.sh`` output, a share
bundle) becomes a verified snapshot of the cluster; ``kubecost_etl_restore`` then puts it in the pod.

Manual only. Trigger with ``{"cluster": "prod-east", "archive": "uploads/kubecost-etl.tar.gz"}``:
``archive`` is the full object key in the bucket of the cluster's backup store, exactly as the bucket
lists it (the configured prefix is not added).

check_archive (pass 1: the whole archive streamed and checked, roots kc-etl-tmp/, etl/, ./ or bingen/,
the allow-list, every bingen header; nothing written) -> record_archive (pass 2: content-addressed
objects, the manifest last with ``source.kind: archive``, then every object re-read and re-hashed).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, chain, dag, task
from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from kubecost_etl.airflow.dag_parts import cluster_param, stages


@dag(
    dag_id="kubecost_etl_import",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # one import at a time into the repositories
    tags=["kubecost", "import"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "cluster": cluster_param(),
        "archive": Param(
            "",
            type="string",
            minLength=1,
            description="Full object key of the .tar.gz in the backup store's bucket, as the bucket "
            "lists it (the configured prefix is not added).",
        ),
    },
)
def kubecost_etl_import():
    @task(execution_timeout=timedelta(hours=3))
    def check_archive(params=None) -> dict:
        return stages("share").check_archive(params["cluster"], params["archive"])

    @task(execution_timeout=timedelta(hours=3))
    def record_archive(checked: dict) -> dict:
        return stages("share").record_archive(checked)

    checked = check_archive()
    chain(checked, record_archive(checked))


kubecost_etl_import()
