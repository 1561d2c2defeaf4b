"""The fault matrix (issue 10, "How it is checked"): faults injected into one stage of a real run.

Each cell runs the pipeline through Airflow (``dag.test()`` with the DAGs' real retries; only the
wait between tries is shortened) against the cluster simulator and moto S3 behind a
fault-injecting proxy. The fault is armed when the chosen stage's first try starts and disarmed
when that try ends, so it hits that stage only. After the run and its retries:

- the pod's ETL dir is byte-identical to the state before the run or to the restored state
  (never a mix, never less), apart from files "Kubecost" itself wrote during the run;
- the run's final state tells the truth: success means restored, failed means as before;
- nothing but the ETL dir is left next to it, and no snapshot is visible without all its objects;
- no lease is left held (the per-cluster lease is released by the run's teardown).

The matrix (fault x stage -> outcome) is printed in pytest's terminal summary (tests/dags/conftest.py).
By default one cell per stage runs, so every fault and every stage is covered (about 30 s a cell
here); ``KUBECOST_ETL_FAULT_MATRIX=full`` runs every combination. Add a pipeline by adding a ``Pipeline``
(its DAG, stages, conf and expected states) to ``PIPELINES``.

Not covered here: a SIGKILLed task process. ``dag.test()`` runs every task in this process, so a
kill would end the test itself; that needs ``airflow tasks run`` in a subprocess (see the report).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubecost_etl.airflow.stages import restore as restore_stages
from kubecost_etl.airflow.stages.backup import run_backup
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.s3 import S3Store
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir, tree_digests
from tests.servers import FaultProxy

from .dag_loading import load_dag_retrying

CLUSTER = "cluster-a"
BUCKET = "fault-matrix"
PREFIX = "matrix"
FAULTS = ("exec_cut", "lost_status", "storage_500", "pod_restart", "debug_container_ended", "kubecost_writes")
KUBECOST_NEW_FILE = "bingen/allocations/1h/1999999999-2000003599"  # appears while the run works
SECOND_RENAME = r"^mv -T \S+\.restore-\S+ \S+$"


@dataclass(frozen=True)
class Pipeline:
    name: str
    dag_id: str
    stages: tuple[str, ...]
    module: object  # where the DAG's tasks find their stage functions (patched to arm the faults)
    conf: Callable[[World], dict]
    before: Callable[[World], None]  # puts the pod into its state before the run
    after: Callable[[World], dict[str, str]]  # the tree a successful run leaves
    lost_status: dict[str, str]  # stage -> the exec whose status is lost (the stage's riskiest command)


@dataclass
class World:
    sim: SimulatorProcess
    proxy: FaultProxy
    repo: Repository
    etl: Path
    snapshot_id: str
    snapshot_tree: dict[str, str]
    pristine: Path  # the tree that was backed up


@dataclass(frozen=True)
class Cell:
    pipeline: str
    stage: str
    fault: str

    @property
    def id(self) -> str:
        return f"{self.pipeline}:{self.stage}:{self.fault}"


def _replace_before(world: World) -> None:
    """After a bad repair: every file rewritten, newer than any backup."""
    _reset(world)
    now = time.time() + 5
    for path in sorted(p for p in world.etl.rglob("*") if p.is_file()):
        path.write_bytes(b"BGST empty after a bad repair " + path.name.encode())
        os.utime(path, (now, now))


def _fill_before(world: World) -> None:
    """Three files lost, one rewritten (fill-missing must add the three and leave the rewritten one)."""
    _reset(world)
    files = sorted(p for p in world.etl.rglob("*") if p.is_file())
    for path in files[:3]:
        path.unlink()
    files[5].write_bytes(b"BGST rewritten by Kubecost " + files[5].name.encode())


def _fill_after(world: World) -> dict[str, str]:
    before = world.before_tree  # type: ignore[attr-defined]
    return {**{p: d for p, d in world.snapshot_tree.items() if p not in before}, **before}


def _reset(world: World) -> None:
    for entry in world.etl.parent.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(world.pristine, world.etl)


RESTORE_STAGES = ("stage", "check_staged", "safety_backup", "swap", "restart", "post_check", "finish")
PIPELINES = {
    "restore-replace": Pipeline(
        "restore-replace", "kubecost_etl_restore", RESTORE_STAGES, restore_stages,
        conf=lambda w: {"cluster": CLUSTER, "snapshot": w.snapshot_id, "mode": "replace", "restart": True},
        before=_replace_before, after=lambda w: dict(w.snapshot_tree),
        lost_status={"stage": r"^tar -x", "check_staged": r"^sha256sum", "safety_backup": r"^tar c",
                     "swap": SECOND_RENAME, "restart": r".", "post_check": r"^sha256sum", "finish": r"^rm -rf"}),
    "restore-fill": Pipeline(
        "restore-fill", "kubecost_etl_restore", RESTORE_STAGES, restore_stages,
        conf=lambda w: {"cluster": CLUSTER, "snapshot": w.snapshot_id, "mode": "fill-missing", "restart": True},
        before=_fill_before, after=_fill_after,
        lost_status={"stage": r"^tar -x", "check_staged": r"^sha256sum", "safety_backup": r"^tar c",
                     "swap": r"^mv -n", "restart": r".", "post_check": r"^sha256sum", "finish": r"^rm -rf"}),
}


def _cells() -> list[Cell]:
    """``full``: every fault at every stage of every pipeline. Default (CI): one cell per stage, the
    pipelines alternating and the faults rotating so every fault and every stage runs at least once
    (the lost status of the swap's second rename included; its retry test is test_restore_retries)."""
    pipelines = list(PIPELINES.values())
    if os.environ.get("KUBECOST_ETL_FAULT_MATRIX") == "full":
        return [Cell(p.name, stage, fault) for p in pipelines for stage in p.stages for fault in FAULTS]
    stages = pipelines[0].stages
    return [Cell(pipelines[index % len(pipelines)].name, stage, FAULTS[(index + 4) % len(FAULTS)])
            for index, stage in enumerate(stages)]


OUTCOMES: dict[Cell, str] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory, moto_s3_server, airflow_db):
    root = tmp_path_factory.mktemp("matrix")
    etl = make_etl_dir(root, days=3, hourly_hours=4, file_bytes=12_000, seed=5)
    pristine = root / "pristine"
    shutil.copytree(etl, pristine)
    client = moto_s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    saved_env = os.environ.get("KUBECOST_ETL_CONFIG")
    with FaultProxy(moto_s3_server.url) as proxy, SimulatorProcess(etl, root / "sim", no_tar=True) as sim:
        store_file = root / "object-store.yaml"
        store_file.write_text(json.dumps({"type": "S3", "prefix": PREFIX, "config": {
            "bucket": BUCKET, "endpoint": proxy.url.split("://", 1)[1], "insecure": True, "region": "us-east-1",
            "access_key": "testing", "secret_key": "testing"}}))
        config = root / "kubecost-etl.yaml"
        config.write_text(json.dumps({"clusters": [{
            "id": CLUSTER, "kubeconfig": str(sim.kubeconfig), "debug_container_seconds": 3600,
            "backup": {"object_store": {"config_file": str(store_file)}}}]}))
        os.environ["KUBECOST_ETL_CONFIG"] = str(config)
        try:
            snapshot_id = run_backup(CLUSTER)["snapshot_id"]
            repo = Repository(S3Store(client, BUCKET, PREFIX), CLUSTER)
            yield World(sim, proxy, repo, etl, snapshot_id, tree_digests(pristine), pristine)
        finally:
            if saved_env is None:
                os.environ.pop("KUBECOST_ETL_CONFIG", None)
            else:
                os.environ["KUBECOST_ETL_CONFIG"] = saved_env


def print_matrix(write: Callable[[str], None]) -> None:
    """The matrix so far (fault x stage -> outcome), one line at a time."""
    if not OUTCOMES:
        return
    write(f"fault matrix ({len(OUTCOMES)} cells; outcome = run state / pod state / tries of the faulted stage)")
    for pipeline in PIPELINES.values():
        cells = {c: o for c, o in OUTCOMES.items() if c.pipeline == pipeline.name}
        if not cells:
            continue
        faults = [f for f in FAULTS if any(c.fault == f for c in cells)]
        width = max(len(x) for x in [*cells.values(), *faults]) + 2
        write(f"{pipeline.name:<16}" + "".join(f"{f:<{width}}" for f in faults))
        for stage in pipeline.stages:
            row = [cells.get(Cell(pipeline.name, stage, f), "-") for f in faults]
            write(f"  {stage:<14}" + "".join(f"{o:<{width}}" for o in row))
    counts: dict[str, int] = {}
    for outcome in OUTCOMES.values():
        key = outcome.split(" ")[0]
        counts[key] = counts.get(key, 0) + 1
    write(f"counts: {counts}")


def _arm(world: World, pipeline: Pipeline, cell: Cell) -> list[str]:
    """Arm the fault for the stage's first try; returns paths Kubecost wrote (excluded from comparisons)."""
    sim, proxy = world.sim, world.proxy
    if cell.fault == "exec_cut":
        sim.set_faults(exec_cut_after_bytes=16, exec_cut_stdin_after_bytes=4096)
    elif cell.fault == "lost_status":
        sim.set_faults(exec_lose_status_pattern=pipeline.lost_status[cell.stage])
    elif cell.fault == "storage_500":
        for method in ("GET", "PUT", "POST", "HEAD"):
            proxy.fail_next(method, r".", times=5)  # more than the S3 client's own attempts
    elif cell.fault == "pod_restart":
        sim.restart_pod()
    elif cell.fault == "debug_container_ended":
        sim.end_ephemeral_containers()
    elif cell.fault == "kubecost_writes":
        files = sorted(p for p in world.etl.rglob("*") if p.is_file())
        files[-1].write_bytes(b"BGST written by Kubecost during the restore")
        new = world.etl / KUBECOST_NEW_FILE
        new.write_bytes(b"BGST a new file Kubecost wrote during the restore")
        return [files[-1].relative_to(world.etl).as_posix(), KUBECOST_NEW_FILE]
    return []


def _disarm(world: World) -> None:
    world.sim.reset_faults()
    world.proxy.clear()


def assert_no_lease_held(world: World, cell: Cell) -> None:
    """The run released the cluster's lease whatever the fault: no lease object is left in the store."""
    from kubecost_etl.lease import lease_key

    assert world.repo.store.stat(lease_key(CLUSTER)) is None, f"{cell.id}: the cluster's lease was left held"


def _complete_snapshots(repo: Repository) -> list[str]:
    stored = repo.object_sizes()
    incomplete = []
    for snapshot_id in repo.snapshot_ids():
        manifest = repo.load_manifest(snapshot_id)
        if any(stored.get(e.object) != e.stored_size for e in manifest.files):
            incomplete.append(snapshot_id)
    return incomplete


def _without(tree: dict[str, str], paths: list[str]) -> dict[str, str]:
    return {p: d for p, d in tree.items() if p not in paths}


@pytest.mark.slow
@pytest.mark.parametrize("cell", _cells(), ids=lambda c: c.id)
def test_fault_in_one_stage_never_loses_or_mixes_data(world, cell, monkeypatch):
    pipeline = PIPELINES[cell.pipeline]
    pipeline.before(world)
    world.before_tree = tree_digests(world.etl)  # type: ignore[attr-defined]
    before = world.before_tree  # type: ignore[attr-defined]
    restored = pipeline.after(world)
    written: list[str] = []
    real = getattr(pipeline.module, cell.stage)
    calls = []

    def faulted(*args, **kwargs):
        calls.append(cell.stage)
        if len(calls) > 1:
            return real(*args, **kwargs)
        written.extend(_arm(world, pipeline, cell))
        try:
            return real(*args, **kwargs)
        finally:
            _disarm(world)

    monkeypatch.setattr(pipeline.module, cell.stage, faulted)
    try:
        run = load_dag_retrying(pipeline.dag_id).test(run_conf=pipeline.conf(world))
    finally:
        _disarm(world)

    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    pod = _without(tree_digests(world.etl), written)
    pod_state = "restored" if pod == _without(restored, written) else (
        "before" if pod == _without(before, written) else "MIXED")
    faulted_tries = states.get(cell.stage, ("-", 0))[1]
    OUTCOMES[cell] = f"{run.state}/{pod_state}/{faulted_tries}" if calls else f"{run.state}/{pod_state}/not-run"

    assert pod_state != "MIXED", f"{cell.id}: the pod holds neither the state before nor the restored one: {states}"
    expected = "restored" if run.state == "success" else "before"
    assert pod_state == expected or before == restored, f"{cell.id}: run {run.state} but pod {pod_state}: {states}"
    assert states["finish"][0] == "success", f"{cell.id}: the teardown failed: {states}"
    assert sorted(p.name for p in world.etl.parent.iterdir()) == ["etl"], f"{cell.id}: left next to the ETL dir"
    assert not list(world.etl.rglob(".kubecost-etl-*")), f"{cell.id}: the swap's marker was left"
    assert _complete_snapshots(world.repo) == [], f"{cell.id}: a snapshot is visible without all its objects"
    assert_no_lease_held(world, cell)
