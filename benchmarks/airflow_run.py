"""Running the real DAG the way an operator would: `airflow dags test` in a fresh process, then reading
each task's duration from Airflow's own metadata DB (task_instance.duration)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def run_measured(command: list[str], env: dict | None = None, stdout=None) -> tuple[int, float]:
    """Run ``command``; its exit code and its own peak RSS in MB.

    The peak is VmHWM from /proc, polled: a new process image starts its own high-water mark, whereas
    wait4's ru_maxrss carries over the parent's RSS at fork time (a benchmark process that generated a
    1 GB file would be "measured" in its children)."""
    process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
    peak_kb = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return process.returncode, peak_kb / 1024


class AirflowHome:
    """An isolated AIRFLOW_HOME (SQLite) with this tree's DAGs and a kubecost-etl config."""

    def __init__(self, home: Path, config: dict, dags_folder: Path = REPO / "dags"):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config_path = home / "kubecost-etl.yaml"
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        self.db = home / "airflow.db"
        include = str(REPO / "include")
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "KUBECOST_ETL_CONFIG": str(self.config_path),
            # This tree's package first (the venv may hold another checkout's editable install).
            "PYTHONPATH": os.pathsep.join(
                [include, str(REPO / "simulator"), os.environ.get("PYTHONPATH", "")]
            ),
        }

    def migrate(self) -> float:
        started = time.perf_counter()
        subprocess.run([AIRFLOW, "db", "migrate"], env=self.env, check=True, capture_output=True)
        return time.perf_counter() - started

    def dags_test(self, dag_id: str, conf: dict | None = None) -> dict:
        """One `airflow dags test` process: its wall time and the run's task durations."""
        command = [AIRFLOW, "dags", "test", dag_id]
        if conf:
            command += ["-c", json.dumps(conf)]
        log = self.home / f"dags-test-{int(time.time() * 1000)}.log"
        started = time.perf_counter()
        with open(log, "wb") as out:
            returncode, peak_mb = run_measured(command, self.env, out)
        wall = time.perf_counter() - started
        tasks = self._last_run_tasks(dag_id)
        failed = [t for t in tasks if t["state"] not in ("success", "skipped")]
        if returncode != 0 or failed or not tasks:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"airflow dags test {dag_id} failed ({returncode}, {failed}):\n{tail}")
        # `dags test` runs every task inside this one process: its peak RSS bounds each task's.
        return {
            "wall_s": wall,
            "task_sum_s": sum(t["duration"] or 0 for t in tasks),
            "tasks": tasks,
            "peak_rss_mb": peak_mb,
            "log": str(log),
        }

    def _last_run_tasks(self, dag_id: str) -> list[dict]:
        with sqlite3.connect(self.db) as db:
            row = db.execute(
                "select run_id from dag_run where dag_id=? order by id desc limit 1", (dag_id,)
            ).fetchone()
            if row is None:
                return []
            rows = db.execute(
                "select task_id, map_index, state, duration from task_instance "
                "where dag_id=? and run_id=? order by start_date",
                (dag_id, row[0]),
            ).fetchall()
        return [{"task_id": t, "map_index": m, "state": s, "duration": d} for t, m, s, d in rows]


def by_task(run: dict) -> dict[str, float]:
    """Durations summed per task id (mapped instances added up)."""
    out: dict[str, float] = {}
    for t in run["tasks"]:
        out[t["task_id"]] = out.get(t["task_id"], 0.0) + (t["duration"] or 0.0)
    return {k: round(v, 2) for k, v in out.items()}


TRIVIAL_DAG = """from airflow.sdk import dag, task


@dag(dag_id="trivial", schedule=None)
def trivial():
    @task
    def hello():
        return 1

    hello()


trivial()
"""


def trivial_floor(work: Path) -> dict:
    """`airflow dags test` of a one-task DAG that does nothing: what Airflow itself charges the first task
    of a `dags test` run (its in-process execution API starts then), the process's wall time and RSS."""
    dags = work / "trivial-dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "trivial_dag.py").write_text(TRIVIAL_DAG)
    home = AirflowHome(work / "trivial-airflow", {"clusters": []}, dags_folder=dags)
    home.migrate()
    run = home.dags_test("trivial")
    return {
        "task_s": round(run["task_sum_s"], 2),
        "wall_s": round(run["wall_s"], 2),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
    }
