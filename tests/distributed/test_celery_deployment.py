"""The pipelines on a real CeleryExecutor Airflow: PostgreSQL and Redis on loopback, an API server, a
scheduler, a DAG processor, a triggerer and two Celery workers, all separate processes (``make
test-distributed``). Backups of two simulated clusters and a repair of a third run at the same time."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir

from .services import (
    RUN_MARKER,
    AirflowDeployment,
    DeploymentError,
    PostgresServer,
    RedisServer,
    ensure_debian_packages,
    leftover_processes,
    wait_for,
)

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]

WORKERS = ["worker-a", "worker-b"]
BACKED_UP = ["alpha", "beta"]
REPAIRED = "gamma"
REPAIR_STEPS = ["asset", "allocation", "cloudCost"]  # profile v2
RUN_DEADLINE_SECONDS = 420


def _config(root: Path, sims: dict[str, SimulatorProcess]) -> Path:
    clusters = []
    for cluster_id, sim in sims.items():
        clusters.append(
            {
                "id": cluster_id,
                "kubeconfig": str(sim.kubeconfig),
                "hourly_hours": 49,
                "backup": {
                    "object_store": {"type": "FILESYSTEM", "config": {"directory": str(root / "store")}}
                },
                "repair": {"poll_seconds": 0.5, "step_timeout_minutes": 5},
            }
        )
    config = root / "kubecost-etl.yaml"
    config.write_text(
        json.dumps({"backup_schedule": None, "alerts": {"notifier": "none"}, "clusters": clusters})
    )
    return config


def _task_instances(airflow: AirflowDeployment, dag_id: str, run_id: str) -> list[dict]:
    answer = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")
    return answer["task_instances"]


def _dag_parsed(airflow: AirflowDeployment, dag_id: str) -> bool:
    try:
        return airflow.api("GET", f"/api/v2/dags/{dag_id}")["dag_id"] == dag_id
    except DeploymentError:
        return False


def _trigger(airflow: AirflowDeployment, dag_id: str, conf: dict) -> str:
    airflow.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    return airflow.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
        "dag_run_id"
    ]


def test_backups_and_a_repair_run_at_once_on_two_celery_workers_with_the_triggerer(tmp_path_factory):
    pg_bin = ensure_debian_packages()
    run_id = uuid.uuid4().hex
    root = Path(tempfile.mkdtemp(prefix="kubecost-etl-distributed-"))
    root.chmod(0o755)  # the postgres user reaches its data dir below it
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "KUBECOST_ETL_CONFIG"}
    env[RUN_MARKER] = run_id
    started: list = []
    sims: dict[str, SimulatorProcess] = {}
    timings: dict[str, float] = {}
    try:
        begin = time.monotonic()
        for cluster_id in [*BACKED_UP, REPAIRED]:
            etl = make_etl_dir(root / cluster_id, days=4, hourly_hours=6, file_bytes=20_000)
            sims[cluster_id] = SimulatorProcess(etl, root / cluster_id / "sim", startup_timeout=60)
            started.append(sims[cluster_id].start())
        postgres = PostgresServer(pg_bin, root, env).start()
        started.append(postgres)
        redis = RedisServer(root, env).start()
        started.append(redis)
        config = _config(root, sims)
        airflow = AirflowDeployment(
            root, env, postgres.url, redis.url, "db+" + postgres.url, {"KUBECOST_ETL_CONFIG": str(config)}
        )
        started.append(airflow)
        airflow.start(WORKERS)
        timings["started"] = time.monotonic() - begin
        for dag_id in ("kubecost_etl_backup", "kubecost_etl_repair"):
            wait_for(
                lambda d=dag_id: _dag_parsed(airflow, d),
                f"the DAG processor to parse {dag_id}",
                120,
                interval=1,
                diagnose=airflow.diagnose,
            )

        # Each repair step is accepted but held until its sensor has deferred: the wait provably
        # happens in the triggerer, whatever the machine's speed.
        repaired = sims[REPAIRED]
        repaired.set_faults(repair_hold_steps=list(REPAIR_STEPS))
        runs = {
            "kubecost_etl_backup": _trigger(airflow, "kubecost_etl_backup", {"clusters": BACKED_UP}),
            "kubecost_etl_repair": _trigger(
                airflow,
                "kubecost_etl_repair",
                {"cluster": REPAIRED, "window": "yesterday", "profile": "v2", "backup_first": False},
            ),
        }
        seen_deferred: set[str] = set()

        def finished() -> dict | None:
            held = repaired.faults()["repair_hold_steps"]
            for ti in _task_instances(airflow, "kubecost_etl_repair", runs["kubecost_etl_repair"]):
                step = ti["task_id"].removeprefix("v2.wait_")
                if ti["state"] == "deferred" and step in REPAIR_STEPS:
                    seen_deferred.add(step)
                    if step in held:
                        repaired.set_faults(repair_hold_steps=[s for s in held if s != step])
            states = {
                d: airflow.api("GET", f"/api/v2/dags/{d}/dagRuns/{r}")["state"] for d, r in runs.items()
            }
            return states if all(s in ("success", "failed") for s in states.values()) else None

        states = wait_for(
            finished, "both runs to finish", RUN_DEADLINE_SECONDS, interval=0.5, diagnose=airflow.diagnose
        )
        timings["runs"] = time.monotonic() - begin - timings["started"]

        instances = {d: _task_instances(airflow, d, r) for d, r in runs.items()}
        summary = {
            d: sorted(((ti["task_id"], ti["map_index"], ti["state"], ti["hostname"]) for ti in tis), key=str)
            for d, tis in instances.items()
        }
        assert states == {"kubecost_etl_backup": "success", "kubecost_etl_repair": "success"}, summary

        ran = [ti for tis in instances.values() for ti in tis if ti["state"] == "success"]
        hosts = {ti["hostname"] for ti in ran}
        assert hosts == set(WORKERS), summary  # every task ran on a Celery worker, and both took work
        backup_verified = [
            ti
            for ti in instances["kubecost_etl_backup"]
            if ti["task_id"] == "backup_cluster.verify" and ti["state"] == "success"
        ]
        assert len(backup_verified) == 2, summary
        for cluster_id in BACKED_UP:
            manifests = list(
                (root / "store" / "kubecost-etl-backup" / cluster_id / "snapshots").glob("*/manifest.json")
            )
            assert len(manifests) == 1, cluster_id

        assert seen_deferred == set(REPAIR_STEPS)  # every repair sensor waited in the triggerer
        logs = airflow.home / "logs" / "dag_id=kubecost_etl_repair"
        for step in REPAIR_STEPS:  # the triggerer itself ran each sensor's trigger (it writes this log)
            assert list(logs.rglob(f"task_id=v2.wait_{step}/attempt=*.log.trigger.*.log")), step
        assert [
            path
            for path in (e["path"] for e in repaired.request_log_lines())
            if path.endswith("/repair") and not path.startswith("/api/")
        ] == ["/model/etl/asset/repair", "/model/etl/allocation/repair", "/model/cloudCost/repair"]
    finally:
        for component in reversed(started):
            component.stop()
        left = leftover_processes(run_id)
        shutil.rmtree(root, ignore_errors=True)
        print(f"distributed run timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    assert left == [], f"processes outlived the teardown: {left}"
    assert not root.exists()
