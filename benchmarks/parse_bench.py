"""How long each DAG file takes to parse in a fresh interpreter, after `import airflow.sdk` (what every task
start and the DAG processor pay), next to a trivial DAG's time as the floor."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

DAGS = Path(__file__).resolve().parent.parent / "dags"
ROUNDS = 3
TRIVIAL = """from airflow.sdk import dag, task


@dag(schedule=None)
def trivial():
    @task
    def hello():
        return 1

    hello()


trivial()
"""


def run() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.dags.test_parse_imports import heavy_modules, parse_in_fresh_interpreter

    home = tempfile.mkdtemp(prefix="bench-airflow-")
    env = {"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    trivial = Path(home) / "trivial_dag.py"
    trivial.write_text(TRIVIAL)
    results = {}
    for path in [trivial, *sorted(DAGS.glob("*.py"))]:
        runs = [parse_in_fresh_interpreter(path, env) for _ in range(ROUNDS)]
        times = [r["ms"] for r in runs]
        results[path.name] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "heavy_modules": heavy_modules(runs[0]["added"]),
            "hidden": heavy_modules(runs[0]["hidden"]),
        }
    print(
        f"{'DAG file (fresh interpreter, after import airflow.sdk)':56} "
        f"{'median ms':>10} {'max ms':>8}  heavy imports"
    )
    for name, r in results.items():
        label = f"{name} (floor)" if name == trivial.name else name
        print(f"{label:56} {r['median_ms']:>10} {r['max_ms']:>8}  {r['heavy_modules'] or '-'}")
    os.environ.setdefault("AIRFLOW_HOME", home)
    preloaded = sorted({m.split(".")[0] for r in results.values() for m in r["hidden"]})
    print(f"heavy modules `import airflow.sdk` loads itself (hidden while each file ran): {preloaded or '-'}")
    return {"rounds": ROUNDS, "files": results}
