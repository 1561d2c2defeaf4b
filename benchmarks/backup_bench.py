"""This project in real Airflow vs restic 0.14 vs Kubecost's manual method, same tree, same servers, one run.

- ours: `airflow dags test kubecost_etl_backup` in a fresh process (full, then no-change), task
  durations read from Airflow's metadata DB, wall time of the process, its peak RSS.
- restic: `kubectl exec ... tar cf - | restic backup --stdin --stdin-filename etl.tar` into an S3
  repository on the same moto server (repository v2, `--compression auto`: zstd's "default" level 3,
  the class of our zstd-3), full then no-change.
- manual: Kubecost's documented method, `kubectl cp` + `tar czf` + one upload (boto3).
- local limit: the slowest of the exec read rate (`kubectl exec tar cf -`, and our frame reader), zstd-3
  on 2 threads over the same bytes, and a raw upload of the same bytes to the same moto server; and the
  three run at once (the rig's ceiling when they share the two cores, as a stream's stages do).
- restore: our restore DAG's staging + full verify (verify_snapshot + stage + check_staged) vs
  `restic dump | kubectl exec -i tar xf -` into the pod.
- peak RSS of a backup process with a 1 GB file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubecost_sim.testing import SimulatorProcess

from benchmarks import trees
from benchmarks.airflow_run import AirflowHome, by_task, run_measured, trivial_floor
from tests.servers import MOTO_ACCESS_KEY, MOTO_REGION, MOTO_SECRET_KEY, MotoS3Server

BUCKET = "bench"
CLUSTER = "bench"
ETL_PATH = "/var/configs/db/etl"
RESTIC_APT = "apt-get install -y restic   # Debian 12: restic 0.14.0"


def ensure_restic() -> str | None:
    found = shutil.which("restic")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("restic missing: installing the Debian package (apt-get install -y restic)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "restic"], env=env, capture_output=True)
        return shutil.which("restic")
    print(f"restic is missing and cannot be installed here: run `sudo {RESTIC_APT}`, then `make bench`")
    return None


def _timed(command: str, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _objstore(moto, prefix: str) -> dict:
    return {
        "type": "S3",
        "prefix": prefix,
        "config": {
            "bucket": BUCKET,
            "endpoint": moto.url.split("://", 1)[1],
            "insecure": True,
            "access_key": MOTO_ACCESS_KEY,
            "secret_key": MOTO_SECRET_KEY,
            "region": MOTO_REGION,
        },
    }


def local_limits(sim, s3, etl: Path, kubectl: str, pod: str) -> dict:
    """MB/s of the tree's bytes through each part alone (page cache warm for all), and through all three
    at once.

    ``limit_mb_s`` is the issue's definition: the slowest part, each measured with the machine to itself.
    ``all_at_once_mb_s`` runs the three side by side on the same cores (as any pipeline doing all three
    must, ours or restic's): with the simulator and moto on the same two cores, that is the rig's real
    ceiling for a stream that reads, compresses and uploads.
    """
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    from kubecost_etl.kube.exec import PodExec
    from kubecost_etl.storage.s3 import S3Store

    store = S3Store(s3, BUCKET, "limits")

    def exec_read_kubectl() -> float:
        return _timed(
            f"{kubectl} exec -n kubecost {pod} -c cost-model -- tar cf - -C {ETL_PATH} . > /dev/null", env
        )

    def exec_read_ours() -> float:
        started = time.perf_counter()
        command = ["tar", "cf", "-", "-C", ETL_PATH, "."]
        with PodExec(sim.core_v1(), "kubecost", pod, "cost-model", command) as session:
            for _ in session.stdout():
                pass
        return time.perf_counter() - started

    import zstandard

    def compress(path: Path) -> int:
        return len(
            zstandard.ZstdCompressor(level=3, threads=2 if path.stat().st_size >= 8 << 20 else 0).compress(
                path.read_bytes()
            )
        )

    compressed = 0

    def zstd() -> float:
        nonlocal compressed
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            compressed = sum(pool.map(compress, files))
        return time.perf_counter() - started

    def upload() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda p: store.put(p.name, iter([p.read_bytes()])), files))
        seconds = time.perf_counter() - started
        store.delete(info.key for info in store.list(""))
        return seconds

    seconds = {
        "exec_read_kubectl": exec_read_kubectl(),
        "exec_read_ours": exec_read_ours(),
        "zstd3_2_threads": zstd(),
        "raw_upload": upload(),
    }
    started = time.perf_counter()
    with ThreadPoolExecutor(3) as together:
        list(together.map(lambda part: part(), (exec_read_kubectl, zstd, upload)))
    seconds["all_at_once"] = time.perf_counter() - started
    rates = {k: total / v / 1e6 for k, v in seconds.items()}
    return {
        **{k: round(v, 1) for k, v in rates.items() if k != "all_at_once"},
        "compression_ratio": round(compressed / total, 3),
        "limit_mb_s": round(
            min(rates["exec_read_kubectl"], rates["zstd3_2_threads"], rates["raw_upload"]), 1
        ),
        "all_at_once_mb_s": round(rates["all_at_once"], 1),
    }


def restic_runs(restic: str, sim, moto, kubectl: str, pod: str) -> dict:
    env = {
        **os.environ,
        "KUBECONFIG": str(sim.kubeconfig),
        "AWS_ACCESS_KEY_ID": MOTO_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET_KEY,
        "RESTIC_PASSWORD": "bench",
        "RESTIC_REPOSITORY": f"s3:{moto.url}/{BUCKET}/restic",
        "RESTIC_CACHE_DIR": tempfile.mkdtemp(),
    }
    subprocess.run(
        [restic, "init", "-q", "--repository-version", "2"], env=env, check=True, capture_output=True
    )
    backup = (
        f"{kubectl} exec -n kubecost {pod} -c cost-model -- tar cf - -C {ETL_PATH} . | "
        f"{restic} backup -q --compression auto --stdin --stdin-filename etl.tar"
    )
    full = _timed(backup, env)
    again = _timed(backup, env)
    target = "/var/configs/db/restic-restore"
    exec_pod = f"{kubectl} exec -n kubecost {pod} -c cost-model"
    subprocess.run(
        ["bash", "-c", f"{exec_pod} -- mkdir -p {target}"], env=env, check=True, capture_output=True
    )
    restore = _timed(
        f"{restic} dump -q latest /etl.tar | {kubectl} exec -i -n kubecost {pod} -c cost-model -- "
        f"tar xf - -C {target}",
        env,
    )
    subprocess.run(["bash", "-c", f"{exec_pod} -- rm -rf {target}"], env=env, capture_output=True)
    return {"full_s": round(full, 2), "no_change_s": round(again, 2), "restore_s": round(restore, 2)}


def manual_method(sim, s3, kubectl: str, pod: str, work: Path) -> float:
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    started = time.perf_counter()
    subprocess.run(
        [kubectl, "cp", "-c", "cost-model", f"kubecost/{pod}:{ETL_PATH}", str(work / "kc-etl-tmp")],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["tar", "czf", str(work / "kubecost-etl.tar.gz"), "-C", str(work), "kc-etl-tmp"], check=True
    )
    s3.upload_file(str(work / "kubecost-etl.tar.gz"), BUCKET, "manual/kubecost-etl.tar.gz")
    elapsed = time.perf_counter() - started
    shutil.rmtree(work / "kc-etl-tmp")
    return elapsed


GB_WORKER = """
import random, sys, time
from pathlib import Path
from kubecost_sim import bingen
from kubecost_sim.etlgen import periods_ending_now, set_file_path, write_set_file
start, end = periods_ending_now("1d", 2, time.time())[0]
write_set_file(set_file_path(Path(sys.argv[1]), "allocations", "1d", start, end),
               bingen.encode_set("allocations", start, end, 1 << 30, random.Random(5)), mtime=end)
"""


def rss_with_one_gb_file(work: Path) -> dict:
    """The backup of a tree holding one 1 GB file, in a child process whose own peak RSS (VmHWM) is read."""
    etl = work / "gb" / "etl"
    subprocess.run([sys.executable, "-c", GB_WORKER, str(etl)], check=True)  # apart: its memory is not ours
    with SimulatorProcess(etl_dir=etl, workdir=work / "gb-sim") as sim, MotoS3Server() as moto:
        moto.client().create_bucket(Bucket=BUCKET)  # a fresh server: moto keeps objects in memory
        out = work / "gb-worker.out"
        started = time.perf_counter()
        with open(out, "wb") as handle:
            code, peak_mb = run_measured(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.backup_worker",
                    "--kubeconfig",
                    str(sim.kubeconfig),
                    "--objstore",
                    json.dumps(_objstore(moto, "gb")),
                ],
                stdout=handle,
            )
        seconds = time.perf_counter() - started
    shutil.rmtree(etl)
    if code != 0:
        raise RuntimeError(f"backup worker failed: {out.read_text()[-3000:]}")
    return {"file_mb": 1024, "peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 2)}


def run(large: bool = False, rss: bool = True) -> dict:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise SystemExit("kubectl is needed for the baselines (restic's input and the manual method)")
    restic = ensure_restic()
    with tempfile.TemporaryDirectory(prefix="kubecost-bench-") as tmp:
        work = Path(tmp)
        etl = work / "pvc" / "etl"
        started = time.perf_counter()
        tree = trees.large_tree(etl) if large else trees.default_tree(etl)
        print(
            f"tree: {tree['files']} files, {tree['bytes'] / 1e6:.0f} MB "
            f"(largest {tree['largest'] / 1e6:.0f} MB),"
            f" generated in {time.perf_counter() - started:.1f} s"
        )
        with SimulatorProcess(etl_dir=etl, workdir=work / "sim") as sim, MotoS3Server() as moto:
            s3 = moto.client()
            s3.create_bucket(Bucket=BUCKET)
            pod = sim.state()["cost_model_pod"]
            limits = local_limits(sim, s3, etl, kubectl, pod)
            print(f"local limits (MB/s): {limits}")
            home = AirflowHome(
                work / "airflow",
                {
                    "backup_schedule": None,
                    "clusters": [
                        {
                            "id": CLUSTER,
                            "kubeconfig": str(sim.kubeconfig),
                            "backup": {"object_store": _objstore(moto, "ours")},
                        }
                    ],
                },
            )
            migrate_s = home.migrate()
            floor = trivial_floor(work)
            print(f"floor, a one-task DAG that does nothing: {floor}")
            full = home.dags_test("kubecost_etl_backup")
            print(
                f"ours full: {full['task_sum_s']:.2f} s of tasks, {full['wall_s']:.2f} s wall {by_task(full)}"
            )
            again = home.dags_test("kubecost_etl_backup")
            print(
                f"ours no-change: {again['task_sum_s']:.2f} s of tasks, "
                f"{again['wall_s']:.2f} s wall {by_task(again)}"
            )
            peer = restic_runs(restic, sim, moto, kubectl, pod) if restic else None
            print(f"restic: {peer}")
            (work / "manual").mkdir()
            manual_s = manual_method(sim, s3, kubectl, pod, work / "manual")
            print(f"manual method: {manual_s:.2f} s")
            restore = home.dags_test(
                "kubecost_etl_restore",
                {"cluster": CLUSTER, "snapshot": "latest", "mode": "replace", "restart": False},
            )
            print(f"ours restore: {restore['task_sum_s']:.2f} s of tasks {by_task(restore)}")
        gb = rss_with_one_gb_file(work) if rss else None
    stream_s = by_task(full).get("backup_cluster.stream", 0.0)
    restore_tasks = by_task(restore)
    staging_verify_s = sum(restore_tasks.get(t, 0.0) for t in ("verify_snapshot", "stage", "check_staged"))
    result = {
        "tree": tree,
        "local_limits": limits,
        "airflow_db_migrate_s": round(migrate_s, 1),
        "trivial_dag": floor,
        "ours_full": {
            "task_sum_s": round(full["task_sum_s"], 2),
            "wall_s": round(full["wall_s"], 2),
            "peak_rss_mb": round(full["peak_rss_mb"], 1),
            "tasks": by_task(full),
        },
        "ours_no_change": {
            "task_sum_s": round(again["task_sum_s"], 2),
            "wall_s": round(again["wall_s"], 2),
            "tasks": by_task(again),
        },
        "restic": peer,
        "manual_s": round(manual_s, 2),
        "ours_restore": {
            "staging_and_full_verify_s": round(staging_verify_s, 2),
            "tasks": restore_tasks,
            "wall_s": round(restore["wall_s"], 2),
        },
        "stream_mb_s": round(tree["bytes"] / 1e6 / stream_s, 1) if stream_s else None,
        "one_gb_file": gb,
    }
    _print(result)
    return result


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _print(r: dict) -> None:
    peer = r["restic"] or {}
    full, again = r["ours_full"], r["ours_no_change"]
    rows = [
        ("", "this project (airflow dags test)", "restic 0.14 / manual", "ratio (target)"),
        (
            "full backup",
            f"{full['task_sum_s']} s of tasks ({full['wall_s']} s wall)",
            f"{peer.get('full_s')} s",
            f"{_ratio(peer.get('full_s'), full['task_sum_s'])} (>= 1.5x)",
        ),
        (
            "no-change backup",
            f"{again['task_sum_s']} s of tasks ({again['wall_s']} s wall)",
            f"{peer.get('no_change_s')} s",
            f"{_ratio(peer.get('no_change_s'), again['task_sum_s'])} (>= 5x)",
        ),
        (
            "whole process vs manual",
            f"{full['wall_s']} s wall",
            f"{r['manual_s']} s (kubectl cp+tar czf+upload)",
            f"{_ratio(r['manual_s'], full['wall_s'])} (>= 2x)",
        ),
        (
            "restore staging + full verify",
            f"{r['ours_restore']['staging_and_full_verify_s']} s of tasks",
            f"{peer.get('restore_s')} s (restic dump | tar xf in the pod)",
            f"{_ratio(peer.get('restore_s'), r['ours_restore']['staging_and_full_verify_s'])} (>= 1x)",
        ),
        (
            "stream throughput",
            f"{r['stream_mb_s']} MB/s",
            f"local limit {r['local_limits']['limit_mb_s']} MB/s",
            f"{_ratio(r['stream_mb_s'], r['local_limits']['limit_mb_s'])} (>= 0.8x)",
        ),
        (
            "",
            "",
            f"all three at once {r['local_limits'].get('all_at_once_mb_s')} MB/s",
            f"{_ratio(r['stream_mb_s'], r['local_limits'].get('all_at_once_mb_s'))}",
        ),
        (
            "airflow's floor (1-task DAG)",
            f"{r['trivial_dag']['task_s']} s of tasks ({r['trivial_dag']['wall_s']} s "
            f"wall, {r['trivial_dag']['peak_rss_mb']} MB RSS)",
            "",
            "charged to each run's first task",
        ),
        ("peak RSS, full backup", f"{full['peak_rss_mb']} MB (whole dags test process)", "", "(< 300 MB)"),
    ]
    if r["one_gb_file"]:
        rows.append(
            (
                "peak RSS, 1 GB file",
                f"{r['one_gb_file']['peak_rss_mb']} MB (backup process)",
                "",
                "(< 300 MB)",
            )
        )
    for row in rows:
        print(f"{row[0]:30} {row[1]:46} {row[2]:44} {row[3]}")
    print(f"per task, full:      {full['tasks']}")
    print(f"per task, no-change: {again['tasks']}")
    print(f"per task, restore:   {r['ours_restore']['tasks']}")
