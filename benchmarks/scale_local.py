"""Many clusters in one backup run under LocalExecutor, the way a one-host deployment runs it.

A real Airflow in a temporary AIRFLOW_HOME: an API server, a scheduler with LocalExecutor (a fresh process
per task) and a DAG processor, from the venv, on PostgreSQL (Debian's, on loopback; ``--scale-db sqlite``
for a SQLite file instead); N simulated clusters (demo-size trees, as the ``dags test`` scale run) and one
moto S3 server. For each ``AIRFLOW__CORE__PARALLELISM`` the scheduler is restarted with that value; for
each cluster count one ``kubecost_etl_backup`` run is triggered through the REST API over the first N
clusters and polled until it ends. The bucket is emptied before every run, so every run is a full backup.

Process management is the distributed test harness's (``tests/distributed/services.py``): each process in
its own process group, carrying a run marker in its environment; afterwards no process may carry the marker
and the temporary folder must be gone, or the benchmark fails.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

from benchmarks.backup_bench import BUCKET, _objstore
from tests.distributed.services import (
    RUN_MARKER,
    VENV_BIN,
    AirflowDeployment,
    DeploymentError,
    PostgresServer,
    Process,
    _postgres_bin,
    leftover_processes,
    wait_for,
)
from tests.servers import MotoS3Server

DAG_ID = "kubecost_etl_backup"
PARALLELISMS = (2, 4, 8)
LIGHT = ("select_clusters", "report", "backup_cluster.acquire_lease", "backup_cluster.release_lease")
HEAVY = (
    "backup_cluster.plan",
    "backup_cluster.stream",
    "backup_cluster.commit",
    "backup_cluster.verify",
)
POLL_SECONDS = 1.0
RUN_DEADLINE_SECONDS = 3600


def cluster_counts(clusters: int) -> list[int]:
    """1, N/4, N/2 and N (20 gives 1, 5, 10, 20; 2 gives 1, 2)."""
    return sorted({count for count in (1, clusters // 4, clusters // 2, clusters) if count >= 1})


class LocalExecutorDeployment(AirflowDeployment):
    """The harness's deployment with LocalExecutor: API server, scheduler and DAG processor only.

    The backup DAG defers nothing (the lease sensor reschedules), so no triggerer is started."""

    def __init__(self, root: Path, base_env: dict, database_url: str, extra_env: dict):
        super().__init__(
            root, base_env, database_url, "", "", {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", **extra_env}
        )
        for celery_only in (
            "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__CELERY__RESULT_BACKEND",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE",
        ):
            self.env.pop(celery_only)

    def start(self, parallelism: int) -> LocalExecutorDeployment:
        self.airflow("db", "migrate")
        for name, args in {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "dag-processor": ["dag-processor"],
        }.items():
            self.processes[name] = Process(
                name, [str(self._airflow_bin()), *args], self.root / f"{name}.log", self.env, cwd=self.root
            )
        self.start_scheduler(parallelism)
        wait_for(
            lambda: self.api("GET", f"/api/v2/dags/{DAG_ID}", ok=(404,)).get("dag_id") == DAG_ID,
            f"the DAG processor to parse {DAG_ID}",
            300,
            interval=1,
            diagnose=self.diagnose,
        )
        self.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        return self

    def start_scheduler(self, parallelism: int) -> None:
        """(Re)start the scheduler with this parallelism; wait until its own heartbeat is in the database."""
        if "scheduler" in self.processes:
            self.processes.pop("scheduler").stop()
        since = datetime.now().astimezone()
        env = {**self.env, "AIRFLOW__CORE__PARALLELISM": str(parallelism)}
        self.processes["scheduler"] = Process(
            "scheduler",
            [str(self._airflow_bin()), "scheduler"],
            self.root / f"scheduler-{parallelism}.log",
            env,
            cwd=self.root,
        )
        wait_for(
            lambda: self._healthy_since(since),
            f"a scheduler with parallelism {parallelism}",
            300,
            interval=1,
            diagnose=self.diagnose,
        )

    def check_alive(self) -> None:
        """A run measured without one of the components would not be the deployment's."""
        for process in self.processes.values():
            if not process.alive():
                raise DeploymentError(
                    f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
                )

    def _healthy_since(self, since: datetime) -> bool:
        self.check_alive()
        try:
            health = self.api("GET", "/api/v2/monitor/health")
        except (OSError, DeploymentError):
            return False
        scheduler = health.get("scheduler") or {}
        beat = scheduler.get("latest_scheduler_heartbeat")
        return (
            all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor")
            )
            and beat is not None
            and datetime.fromisoformat(beat) > since
        )

    @staticmethod
    def _airflow_bin() -> Path:
        return VENV_BIN / "airflow"

    def task_instances(self, run_id: str) -> list[dict]:
        found: list[dict] = []
        while True:
            page = self.api(
                "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}"
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def backup(self, clusters: list[str]) -> dict:
        """Trigger one backup run over ``clusters``; poll it until it ends; what it took."""
        started = time.perf_counter()
        run_id = self.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"clusters": clusters}}
        )["dag_run_id"]

        def ended() -> dict | None:
            self.check_alive()
            run = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = wait_for(
            ended, f"backup run {run_id}", RUN_DEADLINE_SECONDS, interval=POLL_SECONDS, diagnose=self.diagnose
        )
        wall = time.perf_counter() - started
        tasks = self.task_instances(run_id)
        if run["state"] != "success":
            states = sorted((t["task_id"], t["map_index"], t["state"]) for t in tasks)
            raise DeploymentError(f"backup run {run_id} {run['state']}: {states}{self.diagnose()}")
        return summarize(run, tasks, wall)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def summarize(run: dict, tasks: list[dict], wall: float) -> dict:
    durations: dict[str, list[float]] = {}
    waits = []
    intervals = []
    for t in tasks:
        durations.setdefault(t["task_id"], []).append(t["duration"] or 0.0)
        start, end, queued = _time(t["start_date"]), _time(t["end_date"]), _time(t.get("queued_when"))
        if start and queued:
            waits.append((start - queued).total_seconds())
        if start and end:
            intervals.append((start, end))
    # Most task processes running at once (sensor reschedules count only their last poke).
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    run_s = (_time(run["end_date"]) - _time(run["start_date"])).total_seconds()
    return {
        "wall_s": round(wall, 1),
        "run_s": round(run_s, 1),
        "task_sum_s": round(sum(sum(d) for d in durations.values()), 1),
        "task_starts": len(tasks),
        "peak_running": peak,
        "median_queue_wait_s": round(statistics.median(waits), 2) if waits else None,
        "median_s": {task: round(statistics.median(d), 2) for task, d in sorted(durations.items())},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run(clusters: int, parallelisms: tuple[int, ...] = PARALLELISMS, db: str | None = None) -> dict:
    counts = cluster_counts(clusters)
    db = db or ("postgres" if _postgres_bin() else "sqlite")
    run_id = uuid.uuid4().hex
    root = Path(tempfile.mkdtemp(prefix="kubecost-scale-local-"))
    root.chmod(0o755)  # the postgres user reaches its data dir below it
    saved_marker = os.environ.get(RUN_MARKER)
    os.environ[RUN_MARKER] = run_id  # every process started below (simulators and moto too) carries it
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "KUBECOST_ETL_CONFIG"}
    runs: list[dict] = []
    timings: dict[str, float] = {}
    try:
        with ExitStack() as stack:
            begin = time.perf_counter()
            moto = stack.enter_context(MotoS3Server())
            s3 = moto.client()
            s3.create_bucket(Bucket=BUCKET)
            sims = []
            for index in range(max(counts)):
                etl = root / f"c{index}" / "etl"
                generate(etl, days=30, hourly_hours=49, file_bytes=200_000, seed=index)  # the demo's tree
                sims.append(
                    stack.enter_context(SimulatorProcess(etl, root / f"sim{index}", startup_timeout=60))
                )
            config = root / "kubecost-etl.yaml"
            config.write_text(
                json.dumps(
                    {
                        "backup_schedule": None,
                        "alerts": {"notifier": "none"},
                        "clusters": [
                            {
                                "id": f"c{i}",
                                "kubeconfig": str(sim.kubeconfig),
                                "backup": {"object_store": _objstore(moto, f"scale/c{i}")},
                            }
                            for i, sim in enumerate(sims)
                        ],
                    }
                )
            )
            if db == "postgres":
                postgres = PostgresServer(_postgres_bin(), root, env).start()
                stack.callback(postgres.stop)
                database_url = postgres.url
            else:
                database_url = f"sqlite:///{root / 'airflow.db'}"
            airflow = LocalExecutorDeployment(
                root,
                env,
                database_url,
                {
                    "KUBECOST_ETL_CONFIG": str(config),
                    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(16, *parallelisms)),
                    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                },
            )
            stack.callback(airflow.stop)
            airflow.start(parallelisms[0])
            timings["start_s"] = round(time.perf_counter() - begin, 1)
            # The first task processes after start-up read Airflow, the clients and the DAG files from a
            # cold page cache (a first select_clusters took 13.6 s against 0.5-0.8 s after): not measured.
            empty_bucket(s3)
            warmup = airflow.backup(["c0"])
            print(f"  warm-up, 1 cluster: {warmup['wall_s']:.1f} s wall (not counted)", flush=True)
            for parallelism in parallelisms:
                if parallelism != parallelisms[0]:
                    airflow.start_scheduler(parallelism)
                for count in counts:
                    empty_bucket(s3)  # a full backup every time, and moto's memory stays bounded
                    result = airflow.backup([f"c{i}" for i in range(count)])
                    runs.append({"clusters": count, "parallelism": parallelism, **result})
                    print(
                        f"  {count:>3} cluster(s), parallelism {parallelism}: {result['wall_s']:.1f} s wall, "
                        f"{result['task_sum_s']:.1f} s of tasks, {result['peak_running']} at once, "
                        f"load {result['load_average'][0]}",
                        flush=True,
                    )
            timings["total_s"] = round(time.perf_counter() - begin, 1)
    finally:
        left = leftover_processes(run_id)
        shutil.rmtree(root, ignore_errors=True)
        if saved_marker is None:
            os.environ.pop(RUN_MARKER, None)
        else:
            os.environ[RUN_MARKER] = saved_marker
    if left or root.exists():
        raise DeploymentError(f"left behind: processes {left}, temp folder {root if root.exists() else None}")
    growth = {}
    for parallelism in parallelisms:
        walls = {r["clusters"]: r["wall_s"] for r in runs if r["parallelism"] == parallelism}
        if len(walls) > 1:
            growth[str(parallelism)] = round((walls[max(walls)] - walls[1]) / (max(walls) - 1), 1)
    result = {
        "executor": "LocalExecutor",
        "database": db,
        "cluster_counts": counts,
        "parallelisms": list(parallelisms),
        "runs": runs,
        "wall_s_per_extra_cluster": growth,
        "warmup": warmup,
        "timings": timings,
        "cleanup": {"leftover_processes": left, "temp_folder_removed": True},
    }
    print_table(result)
    return result


def empty_bucket(s3) -> None:
    """Delete every object in the benchmark bucket (the next backup is a full one)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def print_table(result: dict) -> None:
    runs = result["runs"]
    print(
        f"\nLocalExecutor ({result['database']}): wall s / sum of task s, per cluster count and parallelism"
    )
    print("clusters | " + " | ".join(f"parallelism {p}" for p in result["parallelisms"]))
    for count in result["cluster_counts"]:
        cells = []
        for p in result["parallelisms"]:
            cell = next(r for r in runs if r["clusters"] == count and r["parallelism"] == p)
            cells.append(f"{cell['wall_s']:7.1f} / {cell['task_sum_s']:7.1f}")
        print(f"{count:>8} | " + " | ".join(f"{c:>14}" for c in cells))
    if result["wall_s_per_extra_cluster"]:
        print(
            "wall s per extra cluster: "
            + ", ".join(f"parallelism {p}: {s}" for p, s in result["wall_s_per_extra_cluster"].items())
        )
    print("\nmedian task duration (s), all runs:")
    for group, names in (("light", LIGHT), ("heavy", HEAVY)):
        for name in names:
            values = [r["median_s"][name] for r in runs if name in r["median_s"]]
            per_run = " ".join(f"{v:.2f}" for v in values)
            print(f"  {group} {name:<32} {statistics.median(values):6.2f}   (per run: {per_run})")
