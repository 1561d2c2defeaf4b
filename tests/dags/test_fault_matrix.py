"""The fault matrix (issue 10, "How it is checked"): faults injected into one stage of a real run.

Each cell runs a pipeline (backup, restore replace and fill-missing, repair with backup_first)
through Airflow (``dag.test()`` with the DAGs' real retries; only the wait between tries is
shortened) against the cluster simulator and moto S3 behind a fault-injecting proxy. The fault is
armed when the chosen stage's first try starts and disarmed when that try ends, so it hits that
stage only. After the run and its retries:

- restore: the pod's ETL dir is byte-identical to the state before the run or to the restored
  state (never a mix, never less), apart from files "Kubecost" itself wrote during the run, and
  the run's final state tells the truth: success means restored, failed means as before;
- backup: the pod is unchanged, and a complete verified snapshot of one real state of the pod
  exists (success) or no new verified one (failed; ``latest`` unchanged);
- repair: no repair call before the safety backup is verified; success means every step of the
  profile was requested in order and Kubecost rewrote the window's files, failed means a step
  never completed and no later step was requested;
- nothing but the ETL dir is left next to it, no snapshot is visible without all its objects,
  and no lease is left held (the per-cluster lease is released by the run's teardown).

A stage a fault cannot touch (an exec fault in a stage that runs no exec, a debug container in a
stage without one) is printed ``n/a``; ``-`` is a cell not run in this mode.

SIGKILL of the task process (the ``sigkill`` column): ``dag.test()`` runs every task in its own
process, so those cells run the DAG in a child process (``tests/dags/fault_runner.py``, its own
AIRFLOW_HOME, the same cluster and bucket) whose fault hook kills it with SIGKILL in the middle of
the stage, at a point the hook itself detects (a multipart upload with a part stored, the first
rename of the swap done): no sleeps. Then the DAG runs again here (the next run, as a retry
or the next schedule would): it may take the dead run's lease over only after it expired (a
30 s ttl), aborts the dead run's multipart uploads and leaves the pod as before or as the snapshot.

The matrix (fault x stage -> outcome) is printed in pytest's terminal summary (tests/dags/conftest.py).
By default one cell per stage of each pipeline runs, and the SIGKILL cells of backup's stream and
restore's swap (a few minutes in all); ``KUBECOST_ETL_FAULT_MATRIX=full`` runs every applicable
combination. Add a pipeline by adding a ``Pipeline`` to ``PIPELINES``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.airflow.stages import repair as repair_stages
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
KILL = "sigkill"
ALL_FAULTS = (*FAULTS, KILL)
EXEC_FAULTS = ("exec_cut", "lost_status", "debug_container_ended")
KUBECOST_NEW_FILE = "bingen/allocations/1h/1999999999-2000003599"  # appears while the run works
SECOND_RENAME = r"^mv -T \S+\.restore-\S+ \S+$"
LEASE = {"ttl": "30s", "poke_interval": "1s"}  # a dead run's lease expires within the test
V2_CALLS = ["/model/etl/asset/repair", "/model/etl/allocation/repair", "/model/cloudCost/repair"]


@dataclass
class World:
    sim: SimulatorProcess
    proxy: FaultProxy
    repo: Repository
    etl: Path
    snapshot_id: str
    snapshot_tree: dict[str, str]
    pristine: Path  # the tree that was backed up
    config: Path  # the project configuration (KUBECOST_ETL_CONFIG)
    root: Path
    before_tree: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """What a cell's check needs: the state before the run and what the run left."""

    before: dict[str, str]  # the pod's tree before the run
    written: list[str]  # paths "Kubecost" wrote during the run (left out of comparisons)
    snapshots_before: list[str]
    latest_before: str | None
    log_offset: int  # simulator request-log lines before the run
    states: dict[str, tuple[str, int]]  # task id -> (state, try number)
    run_state: str


@dataclass(frozen=True)
class Pipeline:
    name: str
    dag_id: str
    stages: tuple[str, ...]
    module: object  # where the DAG's tasks find their stage functions (patched to arm the faults)
    conf: Callable[[World], dict]
    before: Callable[[World], None]  # puts the pod into its state before the run
    check: Callable[[World, Pipeline, Seen], str]  # asserts the outcome; returns its label for the matrix
    lost_status: dict[str, str]  # stage -> the exec whose status is lost (the stage's riskiest command)
    applies: dict[str, tuple[str, ...]]  # stage -> the faults that can touch it
    task_ids: dict[str, str] = field(default_factory=dict)  # stage -> its task id (default: the stage)
    patched: dict[str, str] = field(default_factory=dict)  # stage -> the function armed (default: the stage)
    after: Callable[[World], dict[str, str]] | None = None  # restore: the tree a successful run leaves

    def task_id(self, stage: str) -> str:
        return self.task_ids.get(stage, stage)

    def function(self, stage: str) -> str:
        return self.patched.get(stage, stage)


@dataclass(frozen=True)
class Cell:
    pipeline: str
    stage: str
    fault: str

    @property
    def id(self) -> str:
        return f"{self.pipeline}:{self.stage}:{self.fault}"


# --- the pod before a run --------------------------------------------------------------------------


def _reset(world: World) -> None:
    for entry in world.etl.parent.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(world.pristine, world.etl)


def _files(world: World) -> list[Path]:
    return sorted(p for p in world.etl.rglob("*") if p.is_file())


def _replace_before(world: World) -> None:
    """After a bad repair: every file rewritten, newer than any backup."""
    _reset(world)
    now = time.time() + 5
    for path in _files(world):
        path.write_bytes(b"BGST empty after a bad repair " + path.name.encode())
        os.utime(path, (now, now))


def _fill_before(world: World) -> None:
    """Three files lost, one rewritten (fill-missing must add the three and leave the rewritten one)."""
    _reset(world)
    files = _files(world)
    for path in files[:3]:
        path.unlink()
    files[5].write_bytes(b"BGST rewritten by Kubecost " + files[5].name.encode())


def _fill_after(world: World) -> dict[str, str]:
    before = world.before_tree
    return {**{p: d for p, d in world.snapshot_tree.items() if p not in before}, **before}


def _changed_since_backup(world: World) -> None:
    """Four files Kubecost rewrote since the last backup (new content: the backup has work to do)."""
    _reset(world)
    now = time.time() + 5
    for path in _files(world)[1:8:2]:
        data = path.read_bytes()
        path.write_bytes(data[:-64] + os.urandom(64))  # the bingen header stays valid
        os.utime(path, (now, now))


# --- what a run must leave ---------------------------------------------------------------------------


def _without(tree: dict[str, str], paths: list[str]) -> dict[str, str]:
    return {p: d for p, d in tree.items() if p not in paths}


def _complete_snapshots(repo: Repository) -> list[str]:
    """Snapshots visible (manifest) although an object of theirs is missing or of the wrong size."""
    stored = repo.object_sizes()
    incomplete = []
    for snapshot_id in repo.snapshot_ids():
        manifest = repo.load_manifest(snapshot_id)
        if any(stored.get(e.object) != e.stored_size for e in manifest.files):
            incomplete.append(snapshot_id)
    return incomplete


def assert_no_lease_held(world: World, cell: Cell) -> None:
    """The run released the cluster's lease whatever the fault: no lease object is left in the store."""
    from kubecost_etl.lease import lease_key

    assert world.repo.store.stat(lease_key(CLUSTER)) is None, f"{cell.id}: the cluster's lease was left held"


def _one_real_state(world: World, snapshot_id: str, seen: Seen) -> None:
    """The snapshot holds the pod as it was: every file as before the run (or as Kubecost rewrote it
    meanwhile), none torn or mixed from another tree, none of the pod's files missing."""
    files = {e.path: e.sha256 for e in world.repo.load_manifest(snapshot_id).files}
    before = _without(seen.before, seen.written)
    assert _without(files, seen.written) == before, f"snapshot {snapshot_id} is not a real state of the pod"


def _new_snapshots(world: World, seen: Seen) -> tuple[list[str], list[str]]:
    new = [s for s in world.repo.snapshot_ids() if s not in seen.snapshots_before]
    good = [s for s in new if (world.repo.load_verification(s) or {}).get("ok")]
    return new, good


def _check_restore(world: World, pipeline: Pipeline, seen: Seen) -> str:
    restored = pipeline.after(world)
    pod = _without(tree_digests(world.etl), seen.written)
    pod_state = (
        "restored"
        if pod == _without(restored, seen.written)
        else ("before" if pod == _without(seen.before, seen.written) else "MIXED")
    )
    assert pod_state != "MIXED", f"the pod holds neither the state before nor the restored one: {seen.states}"
    expected = "restored" if seen.run_state == "success" else "before"
    assert pod_state == expected or seen.before == restored, f"run {seen.run_state} but pod {pod_state}"
    assert seen.states["finish"][0] == "success", f"the teardown failed: {seen.states}"
    assert not list(world.etl.rglob(".kubecost-etl-*")), "the swap's marker was left"
    return pod_state


def _check_backup(world: World, pipeline: Pipeline, seen: Seen) -> str:
    pod = tree_digests(world.etl)
    assert _without(pod, seen.written) == _without(seen.before, seen.written), "the backup changed the pod"
    new, good = _new_snapshots(world, seen)
    for snapshot_id in new:
        _one_real_state(world, snapshot_id, seen)
    # One faulted try of one stage: the retries meet a healthy cluster and store, so the backup must succeed
    # (an ended debug container used to fail every retry of plan and stream).
    assert seen.run_state == "success", f"one faulted try failed the whole backup: {seen.states}"
    if seen.run_state == "success":
        assert len(good) == 1, f"a successful backup left verified snapshots {good} (new: {new})"
        assert world.repo.latest_good() == good[0]
        return "snapshot"
    assert good == [], f"the run failed but snapshot(s) {good} verified and became latest"
    assert world.repo.latest_good() == seen.latest_before
    return "unverified" if new else "none"


def _repair_calls(world: World, seen: Seen) -> list[dict]:
    return [
        e
        for e in world.sim.request_log_lines()[seen.log_offset :]
        if e["path"].endswith("/repair") and not e["path"].startswith("/api/")
    ]


def _check_repair(world: World, pipeline: Pipeline, seen: Seen) -> str:
    log = world.sim.request_log_lines()[seen.log_offset :]
    calls = _repair_calls(world, seen)
    steps = [c["path"] for i, c in enumerate(calls) if i == 0 or calls[i - 1]["path"] != c["path"]]
    new, good = _new_snapshots(world, seen)
    if seen.states["backup"][0] == "success":
        assert len(good) == 1, f"the repair's backup succeeded but verified snapshots are {good}"
        _one_real_state(world, good[0], seen)
        execs = [i for i, e in enumerate(log) if e["path"].endswith("/exec")]
        first_call = next((i for i, e in enumerate(log) if e in calls), len(log))
        assert max(execs) < first_call, "a repair call was sent before the backup had read the pod"
    else:
        assert calls == [], "Kubecost was asked to repair although the safety backup did not succeed"
        assert good == [] and world.repo.latest_good() == seen.latest_before
        now = tree_digests(world.etl)
        assert _without(now, seen.written) == _without(seen.before, seen.written), (
            "the pod changed unrepaired"
        )
    assert len({json.dumps(c["query"], sort_keys=True) for c in calls}) <= 1, (
        "steps repaired different windows"
    )
    if seen.run_state == "success":
        assert steps == V2_CALLS, f"a successful repair requested {steps}"
        now = tree_digests(world.etl)
        for store in ("assets", "allocations"):
            assert any(p.startswith(f"bingen/{store}/") and now[p] != seen.before.get(p) for p in now), (
                f"the run reports success but Kubecost rewrote no {store} file"
            )
        return "repaired"
    assert steps == V2_CALLS[: len(steps)], f"steps requested out of order or after a failed one: {steps}"
    waits = [seen.states.get(f"v2.wait_{s}", ("-", 0))[0] for s in ("asset", "allocation", "cloudCost")]
    assert waits != ["success"] * 3, f"every step completed but the run failed: {seen.states}"
    return f"{len(steps)}-of-{len(V2_CALLS)}-steps"


# --- the pipelines -----------------------------------------------------------------------------------

RESTORE_STAGES = ("stage", "check_staged", "safety_backup", "swap", "restart", "post_check", "finish")
_RESTORE_APPLIES = {stage: FAULTS for stage in RESTORE_STAGES}
BACKUP_STAGES = ("find_pod", "plan", "stream", "commit", "verify")
_STORE_ONLY = ("storage_500", "pod_restart", "kubecost_writes")  # no exec: no exec fault can touch them
REPAIR_STAGES = ("preflight", "backup", "request_step", "wait")

PIPELINES = {
    "restore-replace": Pipeline(
        "restore-replace",
        "kubecost_etl_restore",
        RESTORE_STAGES,
        restore_stages,
        conf=lambda w: {"cluster": CLUSTER, "snapshot": w.snapshot_id, "mode": "replace", "restart": True},
        before=_replace_before,
        after=lambda w: dict(w.snapshot_tree),
        check=_check_restore,
        applies=_RESTORE_APPLIES,
        lost_status={
            "stage": r"^tar -x",
            "check_staged": r"^sha256sum",
            "safety_backup": r"^tar c",
            "swap": SECOND_RENAME,
            "restart": r".",
            "post_check": r"^sha256sum",
            "finish": r"^rm -rf",
        },
    ),
    "restore-fill": Pipeline(
        "restore-fill",
        "kubecost_etl_restore",
        RESTORE_STAGES,
        restore_stages,
        conf=lambda w: {
            "cluster": CLUSTER,
            "snapshot": w.snapshot_id,
            "mode": "fill-missing",
            "restart": True,
        },
        before=_fill_before,
        after=_fill_after,
        check=_check_restore,
        applies=_RESTORE_APPLIES,
        lost_status={
            "stage": r"^tar -x",
            "check_staged": r"^sha256sum",
            "safety_backup": r"^tar c",
            "swap": r"^mv -n",
            "restart": r".",
            "post_check": r"^sha256sum",
            "finish": r"^rm -rf",
        },
    ),
    "backup": Pipeline(
        "backup",
        "kubecost_etl_backup",
        BACKUP_STAGES,
        backup_stages,
        conf=lambda w: {"clusters": [CLUSTER]},
        before=_changed_since_backup,
        check=_check_backup,
        applies={
            "find_pod": FAULTS,
            "plan": FAULTS,
            "stream": FAULTS,
            "commit": _STORE_ONLY,
            "verify": _STORE_ONLY,
        },
        # find_pod runs inside the plan task (one task start for both); its faults are armed there.
        task_ids={
            **{stage: f"backup_cluster.{stage}" for stage in BACKUP_STAGES},
            "find_pod": "backup_cluster.plan",
        },
        lost_status={"find_pod": r"^tar --help", "plan": r"^sha256sum", "stream": r"^tar c"},
    ),
    # backup_first: the backup pipeline's stages under the repair's lease; wait: Kubecost's pod restarts
    # while the first step rebuilds (the fault is armed when that step is requested).
    "repair": Pipeline(
        "repair",
        "kubecost_etl_repair",
        REPAIR_STAGES,
        repair_stages,
        conf=lambda w: {"cluster": CLUSTER, "window": "yesterday", "profile": "v2", "backup_first": True},
        before=_changed_since_backup,
        check=_check_repair,
        applies={
            "preflight": _STORE_ONLY,
            "backup": FAULTS,
            "request_step": _STORE_ONLY,
            "wait": ("pod_restart",),
        },
        task_ids={"request_step": "v2.request_asset", "wait": "v2.wait_asset"},
        patched={"wait": "request_step"},
        lost_status={"backup": r"^tar c"},
    ),
}


def applies(pipeline: Pipeline, stage: str, fault: str) -> bool:
    return fault in pipeline.applies[stage]


def _rotate(pipeline: Pipeline, stages: list[str], offset: int) -> list[Cell]:
    """One cell per stage: the fault that applies there and ran least so far (ties: FAULTS from
    ``offset``).
    """
    order = FAULTS[offset:] + FAULTS[:offset]
    used = dict.fromkeys(FAULTS, 0)
    cells = []
    for stage in stages:
        fault = min((f for f in order if applies(pipeline, stage, f)), key=lambda f: used[f])
        used[fault] += 1
        cells.append(Cell(pipeline.name, stage, fault))
    return cells


def _cells() -> list[Cell]:
    """``full``: every applicable fault at every stage of every pipeline. Default (CI): one cell per stage
    of each pipeline, the faults rotating (the restore's stages alternate between replace and fill-missing)
    so every fault and every stage runs at least once (the lost status of the swap's second rename
    included; its retry test is test_restore_retries)."""
    if os.environ.get("KUBECOST_ETL_FAULT_MATRIX") == "full":
        return [
            Cell(p.name, stage, fault)
            for p in PIPELINES.values()
            for stage in p.stages
            for fault in FAULTS
            if applies(p, stage, fault)
        ]
    restores = [PIPELINES["restore-replace"], PIPELINES["restore-fill"]]
    cells = [
        Cell(restores[index % 2].name, stage, FAULTS[(index + 4) % len(FAULTS)])
        for index, stage in enumerate(RESTORE_STAGES)
    ]
    cells += _rotate(PIPELINES["backup"], list(BACKUP_STAGES), 4)
    cells += _rotate(PIPELINES["repair"], list(REPAIR_STAGES), 1)
    return cells


OUTCOMES: dict[Cell, str] = {}


class RealUploadDates:
    """Makes moto's list of open multipart uploads tell when each upload really started, as S3 does
    (moto dates every upload 2010-11-10, older than any ttl, so any age rule would look right)."""

    _UPLOAD = re.compile(rb"<Upload>.*?</Upload>", re.S)

    def __init__(self) -> None:
        self.started: dict[bytes, str] = {}

    def __call__(self, method: str, path: str, body: bytes) -> bytes:
        query = path.partition("?")[2]
        if "uploads" not in query.split("&"):
            return body
        if method == "POST":  # CreateMultipartUpload: its UploadId starts now
            found = re.search(rb"<UploadId>(.*?)</UploadId>", body)
            if found:
                self.started[found.group(1)] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            return body

        def dated(upload: re.Match) -> bytes:
            found = re.search(rb"<UploadId>(.*?)</UploadId>", upload.group(0))
            when = self.started.get(found.group(1)) if found else None
            if when is None:
                return upload.group(0)
            return re.sub(
                rb"<Initiated>.*?</Initiated>", f"<Initiated>{when}</Initiated>".encode(), upload.group(0)
            )

        return self._UPLOAD.sub(dated, body)


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
        proxy.rewrite_response = RealUploadDates()
        store_file = root / "object-store.yaml"
        store_file.write_text(
            json.dumps(
                {
                    "type": "S3",
                    "prefix": PREFIX,
                    "config": {
                        "bucket": BUCKET,
                        "endpoint": proxy.url.split("://", 1)[1],
                        "insecure": True,
                        "region": "us-east-1",
                        "access_key": "testing",
                        "secret_key": "testing",
                    },
                }
            )
        )
        config = root / "kubecost-etl.yaml"
        config.write_text(
            json.dumps(
                {
                    "clusters": [
                        {
                            "id": CLUSTER,
                            "kubeconfig": str(sim.kubeconfig),
                            "debug_container_seconds": 3600,
                            "lease": LEASE,
                            "repair": {"poll_seconds": 0.05, "step_timeout_minutes": 2},
                            "backup": {"object_store": {"config_file": str(store_file)}},
                        }
                    ]
                }
            )
        )
        os.environ["KUBECOST_ETL_CONFIG"] = str(config)
        try:
            snapshot_id = run_backup(CLUSTER)["snapshot_id"]
            repo = Repository(S3Store(client, BUCKET, PREFIX), CLUSTER)
            yield World(sim, proxy, repo, etl, snapshot_id, tree_digests(pristine), pristine, config, root)
        finally:
            if saved_env is None:
                os.environ.pop("KUBECOST_ETL_CONFIG", None)
            else:
                os.environ["KUBECOST_ETL_CONFIG"] = saved_env


def print_matrix(write: Callable[[str], None]) -> None:
    """The matrix so far (fault x stage -> outcome), one line at a time."""
    if not OUTCOMES:
        return
    write(
        f"fault matrix ({len(OUTCOMES)} cells run; outcome = run state / pod or snapshot state / "
        "tries of the faulted stage; n/a: the fault cannot touch that stage; -: not run in this mode)"
    )
    for pipeline in PIPELINES.values():
        cells = {c: o for c, o in OUTCOMES.items() if c.pipeline == pipeline.name}
        if not cells:
            continue
        width = max(len(x) for x in [*cells.values(), *ALL_FAULTS]) + 2
        write(f"{pipeline.name:<16}" + "".join(f"{f:<{width}}" for f in ALL_FAULTS))
        for stage in pipeline.stages:
            row = [
                cells.get(Cell(pipeline.name, stage, f))
                or ("-" if f == KILL or applies(pipeline, stage, f) else "n/a")
                for f in ALL_FAULTS
            ]
            write(f"  {stage:<14}" + "".join(f"{o:<{width}}" for o in row))
    counts: dict[str, int] = {}
    for outcome in OUTCOMES.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    not_applicable = sum(
        1 for p in PIPELINES.values() for s in p.stages for f in FAULTS if not applies(p, s, f)
    )
    write(
        f"counts: {counts}; by fault: "
        f"{ {f: sum(1 for c in OUTCOMES if c.fault == f) for f in ALL_FAULTS} }; n/a cells: {not_applicable}"
    )


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
    elif cell.fault == "pod_restart" and pipeline.name == "repair" and cell.stage == "wait":
        sim.set_faults(restart_during_step="asset")  # the pod restarts while Kubecost rebuilds
    elif cell.fault == "pod_restart":
        sim.restart_pod()
    elif cell.fault == "debug_container_ended":
        sim.end_ephemeral_containers()
    elif cell.fault == "kubecost_writes":
        rewritten = _files(world)[-1].relative_to(world.etl).as_posix()
        for path in (rewritten, KUBECOST_NEW_FILE):
            (world.etl / path).write_bytes(_set_file(path, "written by Kubecost during the run"))
        return [rewritten, KUBECOST_NEW_FILE]
    return []


def _set_file(path: str, text: str) -> bytes:
    """A set file with a valid bingen header (as Kubecost writes them) and a random body."""
    from kubecost_sim import bingen

    pipeline = path.split("/")[1]
    return bingen.encode_header([text], bingen.CODEC_VERSIONS[pipeline]) + os.urandom(256)


def _disarm(world: World) -> None:
    world.sim.reset_faults()
    world.proxy.clear()


def _seen_before(world: World) -> dict:
    return {
        "before": tree_digests(world.etl),
        "snapshots_before": world.repo.snapshot_ids(),
        "latest_before": world.repo.latest_good(),
        "log_offset": len(world.sim.request_log_lines()),
    }


def _states(run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}


def _assert_common(world: World, cell: Cell) -> None:
    assert sorted(p.name for p in world.etl.parent.iterdir()) == ["etl"], (
        f"{cell.id}: left next to the ETL dir"
    )
    assert _complete_snapshots(world.repo) == [], f"{cell.id}: a snapshot is visible without all its objects"
    assert_no_lease_held(world, cell)


@pytest.mark.slow
@pytest.mark.parametrize("cell", _cells(), ids=lambda c: c.id)
def test_fault_in_one_stage_never_loses_or_mixes_data(world, cell, monkeypatch):
    pipeline = PIPELINES[cell.pipeline]
    pipeline.before(world)
    world.before_tree = tree_digests(world.etl)
    start = _seen_before(world)
    written: list[str] = []
    name = pipeline.function(cell.stage)
    real = getattr(pipeline.module, name)
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

    monkeypatch.setattr(pipeline.module, name, faulted)
    try:
        run = load_dag_retrying(pipeline.dag_id).test(run_conf=pipeline.conf(world))
    finally:
        _disarm(world)

    seen = Seen(written=written, states=_states(run), run_state=run.state, **start)
    tries = seen.states.get(pipeline.task_id(cell.stage), ("-", 0))[1] if calls else "not-run"
    OUTCOMES[cell] = f"{run.state}/CHECK-FAILED/{tries}"
    label = pipeline.check(world, pipeline, seen)
    OUTCOMES[cell] = f"{run.state}/{label}/{tries}"
    _assert_common(world, cell)


# --- SIGKILL of the task process -----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
BIG_FILE = "bingen/assets/1h/1999990000-1999993600"  # compresses to more than one 5 MB part

# Where each SIGKILL cell kills its run (see fault_runner.py); the default run's cells first.
KILL_POINTS = {
    ("backup", "stream"): "stream-multipart",
    ("restore-replace", "swap"): "swap-first-rename",
    **{("backup", stage): f"after:backup:{stage}" for stage in ("find_pod", "plan", "commit", "verify")},
    **{("restore-replace", stage): f"after:restore:{stage}" for stage in RESTORE_STAGES if stage != "swap"},
    ("restore-fill", "swap"): "after:restore:swap",
    ("repair", "backup"): "stream-multipart",
    ("repair", "request_step"): "after:repair:request_step",
}
_DEFAULT_KILLS = 2


def _kill_cells() -> list[Cell]:
    points = list(KILL_POINTS)
    if os.environ.get("KUBECOST_ETL_FAULT_MATRIX") != "full":
        points = points[:_DEFAULT_KILLS]
    return [Cell(pipeline, stage, KILL) for pipeline, stage in points]


def _add_big_file(world: World) -> None:
    (world.etl / BIG_FILE).write_bytes(_set_file(BIG_FILE, "a large set") + os.urandom(6 << 20))


def _child_env(world: World, home: Path, airflow_db: str) -> dict[str, str]:
    """A fresh AIRFLOW_HOME holding a copy of this session's migrated metadata DB; the same cluster config."""
    import sqlite3

    home.mkdir(parents=True)
    with (
        sqlite3.connect(Path(airflow_db) / "airflow.db") as source,
        sqlite3.connect(home / "airflow.db") as target,
    ):
        source.backup(target)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "KUBECOST_ETL_CONFIG": str(world.config),
        "PYTHONPATH": f"{REPO / 'include'}:{REPO / 'simulator'}:{REPO}",
    }


def _run_killed(world: World, pipeline: Pipeline, point: str, home: Path, airflow_db: str) -> str:
    """The DAG in a child process that SIGKILLs itself at ``point``; returns what the marker says."""
    import signal
    import subprocess
    import sys

    marker = home.parent / f"{home.name}.killed"
    output = home.parent / f"{home.name}.log"
    env = _child_env(world, home, airflow_db)
    command = [
        sys.executable,
        "-m",
        "tests.dags.fault_runner",
        pipeline.dag_id,
        json.dumps(pipeline.conf(world)),
        point,
        str(marker),
    ]
    with open(output, "wb") as out:
        child = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = child.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
    tail = output.read_text(errors="replace")[-3000:]
    assert code == -signal.SIGKILL, f"the child was not killed (exit {code}):\n{tail}"
    assert marker.exists(), f"killed, but not by the fault hook:\n{tail}"
    return marker.read_text()


def _next_to_etl(world: World) -> set[str]:
    return {p.name for p in world.etl.parent.iterdir()} - {"etl"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("cell", _kill_cells(), ids=lambda c: c.id)
def test_a_task_process_killed_mid_stage_is_recovered_by_the_next_run(world, cell, tmp_path, airflow_db):
    from kubecost_etl.lease import ClusterLease
    from kubecost_etl.snapshots.repository import ROOT as REPOSITORY_ROOT

    pipeline = PIPELINES[cell.pipeline]
    point = KILL_POINTS[(cell.pipeline, cell.stage)]
    pipeline.before(world)
    if point == "stream-multipart":
        _add_big_file(world)
    world.before_tree = before = tree_digests(world.etl)
    OUTCOMES[cell] = "killed?"

    killed_at = _run_killed(world, pipeline, point, tmp_path / "airflow-killed", airflow_db)

    lease = ClusterLease(world.repo.store, CLUSTER)
    held = lease.read()
    assert held is not None and held[0].holder.dag_id == pipeline.dag_id, (
        f"the dead run held no lease: {held}"
    )
    dead_lease = held[0]
    uploads_prefix = f"{REPOSITORY_ROOT}/{CLUSTER}/"
    open_uploads = list(world.repo.store.list_pending_uploads(uploads_prefix))
    if point == "stream-multipart":
        assert open_uploads, "the kill left no multipart upload open: the cell tests nothing"
    if point == "swap-first-rename":
        assert not world.etl.exists() and any(".previous-" in n for n in _next_to_etl(world)), _next_to_etl(
            world
        )
    left_by_dead_run = _next_to_etl(world)
    stored = set(world.repo.object_sizes())

    # The next run: a retry in a new run, or the next scheduled one, on this deployment.
    start = _seen_before(world)
    world.proxy.clear()
    run = load_dag_retrying(pipeline.dag_id).test(run_conf=pipeline.conf(world))
    states = _states(run)
    # A killed repair may have sent a repair call, which Kubecost carries out on its own: the next run starts
    # from what the pod holds then. The others are checked against the pod before the dead run.
    seen = Seen(
        written=[],
        states=states,
        run_state=run.state,
        **{**start, "before": start["before"] if pipeline.name == "repair" else before},
    )
    OUTCOMES[cell] = f"{run.state}/CHECK-FAILED/killed"

    acquire = next(ti for ti in run.get_task_instances() if ti.task_id.endswith("acquire_lease"))
    assert acquire.end_date >= dead_lease.expires_at, (
        f"the dead run's lease (expiring {dead_lease.expires_at}) was taken over at {acquire.end_date}"
    )
    assert list(world.repo.store.list_pending_uploads(uploads_prefix)) == [], (
        "the dead run's uploads are open"
    )
    reuploaded = {
        r.path
        for r in world.proxy.requests
        if r.method == "PUT"
        and any(
            r.path.split("?")[0].endswith(f"/{PREFIX}/{REPOSITORY_ROOT}/{CLUSTER}/{key}")
            for key in stored
            if key.startswith("objects/")
        )
    }
    assert not reuploaded, f"objects the dead run stored were uploaded again: {sorted(reuploaded)[:5]}"
    label = pipeline.check(world, pipeline, seen)
    OUTCOMES[cell] = f"{run.state}/{label}/killed"
    if point == "swap-first-rename":  # the data as before the dead run was put back and backed up first
        new, _ = _new_snapshots(world, seen)  # (not "verified ok": the data after a bad repair is damaged)
        safety = [s for s in new if {e.path: e.sha256 for e in world.repo.load_manifest(s).files} == before]
        assert safety, "the next restore took no safety backup of the data as it was before the dead run"
    assert seen.run_state == "success", f"the next run failed: {states}"
    assert _next_to_etl(world) <= left_by_dead_run, (
        f"the next run left {_next_to_etl(world) - left_by_dead_run}"
    )
    assert _complete_snapshots(world.repo) == [], f"{cell.id}: a snapshot is visible without all its objects"
    assert_no_lease_held(world, cell)
    print(f"{cell.id}: {killed_at}; next run {run.state}; left by the dead run: {sorted(left_by_dead_run)}")
