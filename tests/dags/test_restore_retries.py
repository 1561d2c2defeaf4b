"""kubecost_etl_restore through Airflow's own retries (dag.test() with the DAG's real retry settings).

Only the wait between tries is shortened (dag.test() would wait out the real backoff); the number
of tries, the trigger rules and the teardown are the DAG's own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kubecost_etl.airflow.stages.backup import run_backup

from tests.etl_trees import tree_digests

from .dag_loading import load_dag_retrying
from .one_cluster import CLUSTER, filesystem_cluster

SECOND_RENAME = r"^mv -T \S+\.restore-\S+ \S+$"  # staging -> live: the rename that puts the snapshot in place


@pytest.fixture
def cluster(tmp_path, monkeypatch, simulator):
    sim, etl, store = filesystem_cluster(tmp_path, monkeypatch, simulator, seed=3)
    return sim, etl


def tries(run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}


def bad_repair(etl: Path) -> dict[str, str]:
    """What a repair over days Prometheus no longer holds does: every file rewritten, newer than any
    backup.
    """
    now = time.time() + 5
    for path in sorted(p for p in etl.rglob("*") if p.is_file()):
        path.write_bytes(b"BGST empty after a bad repair " + path.name.encode())
        os.utime(path, (now, now))
    return tree_digests(etl)


@pytest.mark.parametrize("unreachable_after", [0, 1], ids=["status-lost", "status-lost-then-api-unreachable"])
def test_lost_status_of_the_second_rename_never_ends_in_a_false_success(
    cluster, airflow_db, unreachable_after
):
    """Finding 1 of issue 10: the rename staging -> live ran, its exec status was lost.

    ``status-lost`` is the probe's case (on the code before the fix the swap's clean-up deleted the
    staged tree, Airflow's retry answered "already swapped", and the run reported success over the
    damaged data). With ``status-lost-then-api-unreachable`` the next execs lose their status too, so
    the swap task fails and Airflow's own retry has to find out what happened.
    """
    sim, etl = cluster
    snapshot = tree_digests(etl)
    run_backup(CLUSTER)
    damaged = bad_repair(etl)
    sim.set_faults(exec_lose_status_pattern=SECOND_RENAME, exec_lose_status_following=unreachable_after)

    run = load_dag_retrying("kubecost_etl_restore").test(run_conf={"cluster": CLUSTER})

    assert sim.faults()["exec_lose_status_pattern"] is None, "the fault never hit the second rename"
    if unreachable_after:
        assert tries(run)["swap"][1] >= 2, tries(run)  # Airflow retried the swap
    pod_tree = tree_digests(etl)
    # The run's final state tells the truth, whatever happened in between.
    if run.state == "success":
        assert pod_tree == snapshot, "the run reports success but the pod does not hold the snapshot"
    else:
        assert pod_tree == damaged, "the run failed but the pod's data was not put back"
    assert run.state == "success" and pod_tree == snapshot, tries(run)
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]
    assert not [p for p in etl.rglob(".kubecost-etl-*")]  # the swap's marker went with the clean-up
