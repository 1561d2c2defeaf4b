"""kubecost_etl_restore in a real Airflow (dag.test) against the simulator and a filesystem store."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubecost_etl.airflow.stages import restore as stages
from kubecost_etl.airflow.stages.backup import run_backup
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.filesystem import FilesystemStore

from tests.etl_trees import tree_digests

from .dag_loading import load_dag
from .one_cluster import CLUSTER, filesystem_cluster


@pytest.fixture
def cluster(tmp_path, monkeypatch, simulator):
    sim, etl, store = filesystem_cluster(tmp_path, monkeypatch, simulator, seed=3)
    return sim, etl, store


@pytest.fixture
def restore_dag(airflow_db):
    # A retry would wait out its delay; retried stages are tested without Airflow.
    return load_dag("kubecost_etl_restore", retries=0)


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def damage(etl: Path) -> None:
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    files[0].unlink()
    files[1].write_bytes(b"BGST damaged")


def test_replace_run_restores_the_snapshot(cluster, restore_dag):
    sim, etl, _ = cluster
    original = tree_digests(etl)
    run_backup(CLUSTER)
    damage(etl)
    pod = sim.cost_model_pod()

    run = restore_dag.test(run_conf={"cluster": CLUSTER})

    assert run.state == "success", states(run)
    assert states(run)["finish"] == "success" and states(run)["restart"] == "success"
    assert tree_digests(etl) == original
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]
    assert sim.cost_model_pod() != pod


def test_a_failure_after_the_swap_puts_the_previous_data_back(cluster, restore_dag, monkeypatch):
    _, etl, _ = cluster
    run_backup(CLUSTER)
    damage(etl)
    before = tree_digests(etl)
    real_check = stages.post_check

    def check_after_a_loss(ctx, plan, swapped, **kwargs):
        next(p for p in sorted(etl.rglob("*")) if p.is_file()).unlink()  # restored, then lost again
        return real_check(ctx, plan, swapped, **kwargs)

    monkeypatch.setattr(stages, "post_check", check_after_a_loss)

    run = restore_dag.test(run_conf={"cluster": CLUSTER, "restart": False})

    assert run.state == "failed", states(run)
    assert states(run)["post_check"] == "failed" and states(run)["finish"] == "success"
    assert tree_digests(etl) == before
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]


def test_dry_run_and_a_corrupted_snapshot_change_nothing(cluster, restore_dag):
    _, etl, store = cluster
    snapshot = run_backup(CLUSTER)["snapshot_id"]
    damage(etl)
    before = tree_digests(etl)

    dry = restore_dag.test(run_conf={"cluster": CLUSTER, "dry_run": True})
    assert dry.state == "success", states(dry)
    assert states(dry)["plan"] == "success" and states(dry)["stage"] == "skipped"
    assert states(dry)["finish"] == "success"  # a teardown runs once its setup passed; it has nothing to do
    assert tree_digests(etl) == before

    repo = Repository(FilesystemStore(store), CLUSTER)
    victim = repo.load_manifest(snapshot).files[0]
    repo.store.put_bytes(repo.key(victim.object), b"not zstd at all")
    broken = restore_dag.test(run_conf={"cluster": CLUSTER, "snapshot": snapshot})
    assert broken.state == "failed"
    assert states(broken)["verify_snapshot"] == "failed" and states(broken)["stage"] == "upstream_failed"
    assert tree_digests(etl) == before and sorted(p.name for p in etl.parent.iterdir()) == ["etl"]
