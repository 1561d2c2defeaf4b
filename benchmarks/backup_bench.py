"""Full and no-change backups against the simulator and a local S3 server, versus Kubecost's manual method.

The baseline is what Kubecost's script does: `kubectl cp` of the ETL dir to a temp dir, `tar czf`,
then an upload (boto3 here). Our backup runs in a child process whose peak RSS is read from wait4.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

from tests.servers import MotoS3Server

DAILY, HOURLY = 91, 49
FILES = 2 * (DAILY + HOURLY)


def _worker(kubeconfig: Path, objstore: dict) -> tuple[dict, float]:
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.backup_worker", "--kubeconfig", str(kubeconfig),
                                "--objstore", json.dumps(objstore)], stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"backup worker failed: {out}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024  # KiB -> MiB


def _baseline(sim, s3, bucket: str, work: Path) -> float:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return float("nan")
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    pod = sim.state()["cost_model_pod"]
    started = time.perf_counter()
    subprocess.run([kubectl, "cp", "-c", "cost-model", f"kubecost/{pod}:/var/configs/db/etl",
                    str(work / "kc-etl-tmp")], env=env, check=True, capture_output=True)
    subprocess.run(["tar", "czf", str(work / "kubecost-etl.tar.gz"), "-C", str(work), "kc-etl-tmp"], check=True)
    s3.upload_file(str(work / "kubecost-etl.tar.gz"), bucket, "baseline/kubecost-etl.tar.gz")
    return time.perf_counter() - started


def run(size_mb: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="kubecost-bench-") as tmp:
        work = Path(tmp)
        etl = work / "pvc" / "etl"
        started = time.perf_counter()
        generate(etl, days=DAILY, hourly_hours=HOURLY, file_bytes=size_mb * 1024 * 1024 // FILES, seed=11)
        tree_bytes = sum(p.stat().st_size for p in etl.rglob("*") if p.is_file())
        print(f"generated {tree_bytes / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")
        with SimulatorProcess(etl_dir=etl, workdir=work / "sim") as sim, MotoS3Server() as moto:
            s3 = moto.client()
            s3.create_bucket(Bucket="bench")
            objstore = {"type": "S3", "config": {"bucket": "bench", "endpoint": moto.url.split("://", 1)[1],
                                                 "insecure": True, "access_key": "x", "secret_key": "y",
                                                 "region": "us-east-1"}}
            full, full_rss = _worker(sim.kubeconfig, objstore)
            again, again_rss = _worker(sim.kubeconfig, objstore)
            (work / "baseline").mkdir()
            baseline_s = _baseline(sim, s3, "bench", work / "baseline")
    result = {
        "tree_mb": round(tree_bytes / 1e6, 1), "files": full["total_files"],
        "full_seconds": round(full["seconds"], 2), "full_mb_per_s": round(tree_bytes / 1e6 / full["seconds"], 1),
        "full_peak_rss_mb": round(full_rss, 1), "stored_mb": round(full["stored_bytes"] / 1e6, 1),
        "incremental_seconds": round(again["seconds"], 3), "incremental_transferred_bytes": again["transferred_bytes"],
        "incremental_peak_rss_mb": round(again_rss, 1),
        "incremental_vs_full": round(again["seconds"] / full["seconds"], 4),
        "baseline_seconds": round(baseline_s, 2), "speedup_vs_baseline": round(baseline_s / full["seconds"], 2),
    }
    rows = [
        ("ETL tree", f"{result['tree_mb']} MB, {result['files']} files"),
        ("full backup", f"{result['full_seconds']} s, {result['full_mb_per_s']} MB/s, stored {result['stored_mb']} MB"),
        ("full backup peak RSS", f"{result['full_peak_rss_mb']} MB (target < 300)"),
        ("no-change incremental", f"{result['incremental_seconds']} s, {result['incremental_transferred_bytes']} bytes "
                                  f"moved, {result['incremental_vs_full'] * 100:.1f}% of full (target < 5%)"),
        ("manual method (kubectl cp + tar czf + upload)", f"{result['baseline_seconds']} s"),
        ("speedup vs manual", f"{result['speedup_vs_baseline']}x (target >= 2x)"),
    ]
    for name, value in rows:
        print(f"{name:48} {value}")
    return result
