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
