"""Loading one DAG file for dag.test(), with task settings a test needs changed."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_dag(dag_id: str, **task_overrides):
    """The DAG from ``dags/<dag_id>.py``; ``task_overrides`` are set on every task (e.g. retries=0,
    because dag.test() would otherwise wait out the real retry delays)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        for name, value in task_overrides.items():
            setattr(task, name, value)
    return dag


_NO_RETRY = {"preflight", "summary", "report"}  # and the repair's wait_<step> sensors (one per profile step)


def load_dag_retrying(dag_id: str):
    """The DAG with its real retries and trigger rules; only the wait between tries is shortened to
    about a second (dag.test() waits out the backoff, minutes with the real delay)."""
    from datetime import timedelta

    from kubecost_etl.airflow.dag_defaults import DEFAULT_ARGS

    dag = load_dag(dag_id, retry_delay=timedelta(0), max_retry_delay=timedelta(seconds=1))
    # The DAG's own retry counts stay: the defaults' on most tasks, some tasks their own (the
    # lease's release).
    assert DEFAULT_ARGS["retries"] > 0
    assert all(task.retries > 0 for task in dag.tasks if not _no_retry(task.task_id)), [
        (t.task_id, t.retries) for t in dag.tasks if t.retries == 0
    ]
    return dag


def _no_retry(task_id: str) -> bool:
    name = task_id.rsplit(".", 1)[-1]  # without its task group (v1., v2., backup_cluster.)
    return name in _NO_RETRY or name.startswith("wait_")
