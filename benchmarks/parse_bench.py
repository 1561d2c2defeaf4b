"""How long each DAG file takes to parse, once Airflow itself is imported (what the DAG processor pays)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

DAGS = Path(__file__).resolve().parent.parent / "dags"
ROUNDS = 5


def run() -> dict:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=str(DAGS))  # warm-up: imports Airflow, providers and our package once
    results = {}
    for path in sorted(DAGS.glob("*.py")):
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            times.append(time.perf_counter() - start)
            assert not bag.import_errors, bag.import_errors
        results[path.name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                              "max_ms": round(max(times) * 1000, 1), "dags": sorted(bag.dag_ids)}
    print(f"{'DAG file':40} {'median ms':>10} {'max ms':>10}")
    for name, r in results.items():
        print(f"{name:40} {r['median_ms']:>10} {r['max_ms']:>10}")
    return {"rounds": ROUNDS, "files": results}
