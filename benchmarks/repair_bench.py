"""Following a repair in the cost-model log: how fast the trigger notices completion, and what each
poll reads.

1. Delay: from the line that completes a step appearing in the log (its Kubernetes timestamp) to
   the trigger's event, for several poll intervals. Repairs are slowed by random amounts so
   completion falls at a random point between two polls.
2. Bytes per poll: the same step with a small log and with a large one (noise lines written
   before the request), next to what re-reading the whole log each poll would cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from kubecost_etl.config import CONFIG_ENV
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

CLUSTER_ID = "bench"
DELAY_TRIALS = {0.2: 10, 1.0: 8, 10.0: 3}  # poll interval (s) -> trials
NOISE_LINE = (
    "2026-01-01T00:00:00.000Z INF ETL: Allocation[1h]: AggregatedStoreDriver[noise]: run: aggregated "
    "[2026-01-01T00:00:00+0000, 2026-01-01T01:00:00+0000) from 19 to 3 in 68.417µs "
)
NOISE_BATCH = 5000


def _follow(step: str, window_text: str, poll_seconds: float) -> dict:
    """Request one repair step with the DAG's own stages and follow it with the sensor's trigger;
    its event.
    """
    from kubecost_etl.airflow.stages import repair as stages
    from kubecost_etl.airflow.triggers.repair_log import RepairLogTrigger

    plan = stages.preflight(
        {"cluster": CLUSTER_ID, "window": window_text, "profile": "v1", "backup_first": False}
    )
    watch = stages.request_step(plan, step)
    trigger = RepairLogTrigger.for_watch(watch, poll_seconds=poll_seconds)
    event = asyncio.run(trigger.run().__anext__()).payload
    assert event["status"] == "done", event["message"]
    return event


def _delays(sim) -> dict:
    speeds = random.Random(7)  # repairs of random length end at a random point between two polls
    results = {}
    for poll_seconds, trials in DELAY_TRIALS.items():
        delays = []
        for _ in range(trials):
            sim.set_faults(repair_seconds_per_day=speeds.uniform(0.2, 2.0) * max(1.0, poll_seconds / 2))
            event = _follow("asset", "yesterday", poll_seconds)
            delays.append(event["finished_at"] - event["last_line_ns"] / 1e9)
        results[poll_seconds] = {
            "trials": trials,
            "median_s": round(statistics.median(delays), 3),
            "max_s": round(max(delays), 3),
            "min_s": round(min(delays), 3),
        }
    sim.reset_faults()
    return results


def _bytes_per_poll(sim, core, noise_mb: int) -> dict:
    lines = noise_mb * (1 << 20) // len(NOISE_LINE)
    for start in range(0, lines, NOISE_BATCH):
        sim.append_log(*[NOISE_LINE] * min(NOISE_BATCH, lines - start))
    # The simulator stamps lines when they arrive, so the noise is one burst of a few seconds; a real
    # log is not. One quiet second and a last line give the request a cursor in an ordinary second.
    time.sleep(1.1)
    sim.append_log("2026-01-01T00:00:00.000Z INF quiet")
    pod = find_cost_model_pod(core, "kubecost", "app=cost-analyzer")
    log_size = len(
        core.read_namespaced_pod_log(
            pod.name, "kubecost", container="cost-model", _preload_content=False
        ).data
    )
    sim.set_faults(repair_seconds_per_day=2.0)  # several polls while the repair runs
    event = _follow("allocation", "2d", 0.2)
    sim.reset_faults()
    polls = event["polls"]
    return {
        "log_bytes": log_size,
        "polls": polls,
        "bytes_read": event["bytes_read"],
        "mean_bytes_per_poll": round(event["bytes_read"] / polls),
        "max_bytes_per_poll": event["max_bytes_per_poll"],
        "full_reread_bytes_per_poll": log_size,
    }


def run() -> dict:
    from kubernetes.client import CoreV1Api

    os.environ.setdefault(
        "AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-")
    )  # before Airflow is imported
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="kubecost-repair-bench-") as tmp:
        etl = Path(tmp) / "db" / "etl"
        generate(etl, days=4, hourly_hours=49, file_bytes=2000, seed=3)
        with SimulatorProcess(etl, Path(tmp) / "sim") as sim:
            config = Path(tmp) / "kubecost-etl.yaml"  # no backup store: the stages run with backup_first off
            config.write_text(
                json.dumps(
                    {
                        "clusters": [
                            {
                                "id": CLUSTER_ID,
                                "kubeconfig": str(sim.kubeconfig),
                                "repair": {"step_timeout_minutes": 5},
                            }
                        ]
                    }
                )
            )
            with mock.patch.dict(os.environ, {CONFIG_ENV: str(config)}):
                core = CoreV1Api(sim.api_client())
                results["completion_delay"] = _delays(sim)
                results["log_read"] = {"small log": _bytes_per_poll(sim, core, 0)}
                results["log_read"]["large log (~40 MB)"] = _bytes_per_poll(sim, core, 40)
    print(f"{'poll interval':>14} {'trials':>7} {'median delay s':>15} {'max delay s':>12}")
    for poll, r in results["completion_delay"].items():
        print(f"{poll:>14} {r['trials']:>7} {r['median_s']:>15} {r['max_s']:>12}")
    print(
        f"\n{'log':20} {'log bytes':>12} {'polls':>6} {'mean B/poll':>12} {'max B/poll':>11} "
        f"{'full re-read B/poll':>20}"
    )
    for name, r in results["log_read"].items():
        print(
            f"{name:20} {r['log_bytes']:>12} {r['polls']:>6} {r['mean_bytes_per_poll']:>12} "
            f"{r['max_bytes_per_poll']:>11} {r['full_reread_bytes_per_poll']:>20}"
        )
    results["completion_delay"] = {str(k): v for k, v in results["completion_delay"].items()}
    return results


if __name__ == "__main__":
    run()
