"""Pieces the DAGs share: light at parse time, only airflow.sdk.

- ``stages(name)``: a pipeline's stage module, imported when a task runs (parsing stays cheap).
- ``cluster_param``: the ``cluster`` form field of the manual one-cluster DAGs (share, import).
- ``cluster_task``/``label``: a mapped task shown by cluster id instead of its map index.
- ``held``: a stage body runs only while this run holds the cluster's lease (checked and renewed).
- ``release_lease``: the teardown that gives the cluster's lease back whatever happened.
"""

from __future__ import annotations

import importlib

from airflow.sdk import Param, get_current_context, task


def stages(name: str):
    """``kubecost_etl.airflow.stages.<name>``, imported when a task runs, not when the DAG file is parsed."""
    return importlib.import_module(f"kubecost_etl.airflow.stages.{name}")


def cluster_param() -> Param:
    return Param(
        "",
        type="string",
        description="Cluster id from the configuration; empty means the only configured cluster.",
    )


def clusters_param(verb: str, empty_means: str) -> Param:
    """The ``clusters`` form field of a DAG that runs over several clusters."""
    return Param(
        [],
        type="array",
        items={"type": "string"},
        description=f"Cluster ids to {verb}; empty means {empty_means}.",
    )


def select_clusters(pipeline: str):
    """The run's first task: the ``clusters`` param checked by the pipeline's stage module (an unknown or
    duplicate id is a refusal: failed in one try) or every cluster the pipeline serves."""

    @task(task_id="select_clusters")
    def select(params=None) -> list[str]:
        return stages(pipeline).select_clusters(params["clusters"])

    return select


def label(cluster_id: str) -> None:
    get_current_context()["cluster_id"] = cluster_id  # shown as the map index in the UI


def cluster_task(**kwargs):
    return task(map_index_template="{{ cluster_id }}", **kwargs)


def held(cluster_id: str, lease: dict):
    """The stage runs only while this run holds the cluster's lease, and renews it meanwhile."""
    from kubecost_etl.airflow.lease import lease_held

    return lease_held(cluster_id, lease)


@cluster_task(retries=3)
def release_lease(cluster_id: str, lease: dict | None = None, **context) -> str:
    label(cluster_id)
    from kubecost_etl.airflow.lease import release

    return release(cluster_id, lease, context)
