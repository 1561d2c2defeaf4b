"""A share bundle of a whole generated ETL tree (1 GB by default) from the simulated pod into a local S3
server, versus ``tar czf`` of the same files on local disk (the same gzip level, 6).

The bundle runs in a child process (``python -m benchmarks.share_bench --worker``) whose own peak RSS
(VmHWM) is read; the target is < 300 MB whatever the tree's size. Then that bundle is imported back
(``--worker --import-key``: both passes, zstd objects, a full verification), also in a child process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAILY, HOURLY = 91, 49
FILES = 2 * (DAILY + HOURLY)


def _worker_main(kubeconfig: str, objstore: str) -> int:
    from kubecost_etl.kube.pods import find_cost_model_pod
    from kubecost_etl.kube.target import resolve_exec_target
    from kubecost_etl.share.pipeline import make_bundle, plan_share
    from kubecost_etl.snapshots.repository import Repository
    from kubecost_etl.storage.objstore_config.build import build_store
    from kubecost_etl.storage.objstore_config.parse import parse_objstore_config
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    store = build_store(parse_objstore_config(json.loads(objstore), source="benchmark"))
    started = time.perf_counter()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "/var/configs/db/etl"
    )
    request, _ = plan_share(
        "bench", "pod", None, [], [], repo=Repository(store, "bench"), core_api=core, target=target
    )
    result = make_bundle(
        request,
        repo=Repository(store, "bench"),
        share_store=store,
        level=6,
        link_hours=1,
        core_api=core,
        target=target,
    )
    print(json.dumps({**result.as_dict(), "seconds": time.perf_counter() - started}))
    return 0


def _import_main(objstore: str, key: str) -> int:
    from kubecost_etl.config import BackupSettings, ObjectStoreRef
    from kubecost_etl.share.importer import check_archive, record_archive
    from kubecost_etl.snapshots.repository import Repository
    from kubecost_etl.storage.objstore_config.build import build_store
    from kubecost_etl.storage.objstore_config.parse import parse_objstore_config

    store = build_store(parse_objstore_config(json.loads(objstore), source="benchmark"))
    started = time.perf_counter()
    checked = check_archive(store, "bench-import", key, 1 << 30)
    result = record_archive(
        store,
        Repository(store, "bench-import"),
        checked,
        BackupSettings(object_store=ObjectStoreRef(inline={})),
    )
    print(json.dumps({**result, "seconds": time.perf_counter() - started}))
    return 0


def _worker(
    work: Path, kubeconfig: Path | None, objstore: dict, import_key: str | None = None
) -> tuple[dict, float]:
    """One worker run; its result and its own peak RSS (VmHWM, see ``airflow_run.run_measured``)."""
    from .airflow_run import run_measured

    mode = ["--import-key", import_key] if import_key else ["--kubeconfig", str(kubeconfig)]
    command = [
        sys.executable,
        "-m",
        "benchmarks.share_bench",
        "--worker",
        *mode,
        "--objstore",
        json.dumps(objstore),
    ]
    out = work / ("import.out" if import_key else "share.out")
    with open(out, "wb") as handle:
        code, peak_mb = run_measured(command, stdout=handle)
    lines = out.read_text(errors="replace").strip().splitlines()
    if code != 0:
        raise RuntimeError("share worker failed: " + "\n".join(lines[-20:]))
    return json.loads(next(line for line in reversed(lines) if line.startswith("{"))), peak_mb


def run(size_mb: int = 1024) -> dict:
    from kubecost_sim.etlgen import generate
    from kubecost_sim.testing import SimulatorProcess

    from tests.servers import MotoS3Server

    with tempfile.TemporaryDirectory(prefix="kubecost-share-bench-") as tmp:
        work = Path(tmp)
        etl = work / "pvc" / "etl"
        generate(etl, days=DAILY, hourly_hours=HOURLY, file_bytes=size_mb * 1024 * 1024 // FILES, seed=11)
        tree_bytes = sum(p.stat().st_size for p in etl.rglob("*") if p.is_file())
        started = time.perf_counter()
        subprocess.run(
            ["tar", "czf", str(work / "baseline.tar.gz"), "-C", str(etl.parent), "etl"], check=True
        )
        tar_seconds = time.perf_counter() - started
        tar_size = (work / "baseline.tar.gz").stat().st_size
        with SimulatorProcess(etl_dir=etl, workdir=work / "sim") as sim, MotoS3Server() as moto:
            moto.client().create_bucket(Bucket="bench")
            objstore = {
                "type": "S3",
                "config": {
                    "bucket": "bench",
                    "endpoint": moto.url.split("://", 1)[1],
                    "insecure": True,
                    "access_key": "x",
                    "secret_key": "y",
                    "region": "us-east-1",
                },
            }
            bundle, rss = _worker(work, sim.kubeconfig, objstore)
            imported, import_rss = _worker(work, None, objstore, import_key=bundle["key"])
    result = {
        "tree_mb": round(tree_bytes / 1e6, 1),
        "files": bundle["files"],
        "bundle_mb": round(bundle["size"] / 1e6, 1),
        "bundle_seconds": round(bundle["seconds"], 2),
        "bundle_mb_per_s": round(tree_bytes / 1e6 / bundle["seconds"], 1),
        "bundle_peak_rss_mb": round(rss, 1),
        "tar_czf_seconds": round(tar_seconds, 2),
        "tar_czf_mb_per_s": round(tree_bytes / 1e6 / tar_seconds, 1),
        "tar_czf_mb": round(tar_size / 1e6, 1),
        "import_seconds": round(imported["seconds"], 2),
        "import_mb_per_s": round(tree_bytes / 1e6 / imported["seconds"], 1),
        "import_peak_rss_mb": round(import_rss, 1),
    }
    rows = [
        ("ETL tree", f"{result['tree_mb']} MB, {result['files']} files"),
        (
            "share bundle (pod -> gzip 6 -> S3)",
            f"{result['bundle_seconds']} s, {result['bundle_mb_per_s']} MB/s, {result['bundle_mb']} MB",
        ),
        ("share bundle peak RSS", f"{result['bundle_peak_rss_mb']} MB (target < 300)"),
        (
            "tar czf of the same files (local disk)",
            f"{result['tar_czf_seconds']} s, {result['tar_czf_mb_per_s']} MB/s, {result['tar_czf_mb']} MB",
        ),
    ]
    rows.append(
        (
            "import of that bundle (2 passes, zstd, verified)",
            f"{result['import_seconds']} s, {result['import_mb_per_s']} MB/s, "
            f"peak RSS {result['import_peak_rss_mb']} MB",
        )
    )
    for name, value in rows:
        print(f"{name:48} {value}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--objstore")
    parser.add_argument("--import-key")
    parser.add_argument("--size-mb", type=int, default=1024)
    opts = parser.parse_args()
    if opts.worker:
        if opts.import_key:
            sys.exit(_import_main(opts.objstore, opts.import_key))
        sys.exit(_worker_main(opts.kubeconfig, opts.objstore))
    run(opts.size_mb)
