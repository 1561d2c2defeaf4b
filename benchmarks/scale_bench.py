"""Many clusters in one backup run: N simulators (demo-size trees), one moto server, one `airflow dags test`.

`dags test` runs the mapped tasks one after another in one process, so this shows how the work grows
with clusters (task time per cluster); ``scale_local`` runs them under LocalExecutor, `parallelism` at a
time (the default of ``python -m benchmarks --only scale``; this one is ``--executor dags-test``).
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

from benchmarks.airflow_run import AirflowHome, by_task
from benchmarks.backup_bench import BUCKET, _objstore
from benchmarks.scale_local import empty_bucket
from tests.servers import MotoS3Server


def run(clusters: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="kubecost-scale-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        moto = stack.enter_context(MotoS3Server())
        moto.client().create_bucket(Bucket=BUCKET)
        sims = []
        for index in range(clusters):
            etl = work / f"c{index}" / "etl"
            generate(etl, days=30, hourly_hours=49, file_bytes=200_000, seed=index)  # the demo's tree
            sims.append(stack.enter_context(SimulatorProcess(etl_dir=etl, workdir=work / f"sim{index}")))
        config = {
            "backup_schedule": None,
            "clusters": [
                {
                    "id": f"c{index}",
                    "kubeconfig": str(sim.kubeconfig),
                    "backup": {"object_store": _objstore(moto, f"scale/c{index}")},
                }
                for index, sim in enumerate(sims)
            ],
        }
        home = AirflowHome(work / "airflow", config)
        home.migrate()
        results = {}
        for count in sorted({1, clusters}):
            empty_bucket(moto.client())  # c0 would otherwise be a no-change backup in the second run
            one = home.dags_test(
                "kubecost_etl_backup",
                {"clusters": [f"c{i}" for i in range(count)]} if count < clusters else None,
            )
            results[count] = {
                "wall_s": round(one["wall_s"], 1),
                "task_sum_s": round(one["task_sum_s"], 1),
                "tasks": by_task(one),
            }
            print(f"{count} cluster(s): {one['task_sum_s']:.1f} s of tasks, {one['wall_s']:.1f} s wall")
    return {"clusters": clusters, "runs": {str(k): v for k, v in results.items()}}
