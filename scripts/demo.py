"""`make demo`: the backup and federate pipelines end to end on local, embedded parts.

Starts two Kubecost cluster simulators with generated ETL trees, a local S3 server (moto), and
`airflow standalone` with this project's DAGs; runs the backup of the first cluster once, then the
federate DAG, which pushes both clusters into one federated bucket (as Kubecost's Aggregator reads
it); prints where to look. Every project DAG is unpaused (a run triggered from the UI starts at
once). The Kubecost ETL status page is at `<ui>/kubecost-etl/` (log in to the UI first; the login is
printed). Ctrl-C stops everything it started: every process and all their descendants (found by
walking the process tree, since some of Airflow's children leave the process group they were started in).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import boto3
import yaml
from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BUCKET = "kubecost-etl-demo"
FEDERATED_BUCKET = "kubecost-federated-demo"
DAG_ID = "kubecost_etl_backup"
FEDERATE_DAG_ID = "kubecost_etl_federate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{what}: the process exited with {process.returncode}")
        try:
            result = check()
            if result:
                return result
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_tree(pid: int, grace: float = 20.0) -> None:
    """SIGTERM a process, its process group and every descendant; SIGKILL whatever outlives ``grace``."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            tree.extend(c for c in proc.children(recursive=True) if c not in tree)  # forked while stopping
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def start(stack: ExitStack, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    handle = open(log, "ab")
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop():
        stop_tree(process.pid)
        process.wait()
        handle.close()

    stack.callback(stop)
    return process


def airflow(env: dict, *args: str) -> str:
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def project_dags(env: dict) -> list[str]:
    """Every DAG of this project the DAG processor has parsed (the ids start with kubecost_etl_)."""
    out = airflow(env, "dags", "list", "-o", "plain")
    return sorted(
        {word for line in out.splitlines() for word in line.split() if word.startswith("kubecost_etl_")}
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(REPO / ".local" / "demo"))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--file-kb", type=int, default=256)
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI/API port")
    parser.add_argument("--exit-after-run", action="store_true", help="stop once the backup run ends")
    opts = parser.parse_args()

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", opts.port)) == 0:
            raise SystemExit(
                f"port {opts.port} is already in use: pass --port (make demo DEMO_ARGS='--port 8081')"
            )
    work = Path(opts.workdir)
    if work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    etl_dir = work / "pvc" / "etl"
    files = generate(etl_dir, days=opts.days, hourly_hours=49, file_bytes=opts.file_kb * 1024, seed=7)
    print(
        f"generated {len(files)} ETL files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) in {etl_dir}"
    )
    second_etl_dir = work / "pvc-2" / "etl"  # a second cluster, federating into the same bucket
    files = generate(second_etl_dir, days=7, hourly_hours=49, file_bytes=opts.file_kb * 256, seed=8)
    print(f"generated {len(files)} ETL files for the second cluster in {second_etl_dir}")

    with ExitStack() as stack:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sim = stack.enter_context(SimulatorProcess(etl_dir=etl_dir, workdir=work / "simulator"))
        print(f"cluster simulator: {sim.api_url} (kubeconfig {sim.kubeconfig})")
        sim2 = stack.enter_context(SimulatorProcess(etl_dir=second_etl_dir, workdir=work / "simulator-2"))
        print(f"second cluster simulator: {sim2.api_url} (kubeconfig {sim2.kubeconfig})")

        s3_port = free_port()
        moto = start(
            stack,
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
            work / "logs" / "s3.log",
        )
        s3_url = f"http://127.0.0.1:{s3_port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
            region_name="us-east-1",
        )
        wait_for("the local S3 server", lambda: s3.list_buckets() is not None, 60, moto)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=FEDERATED_BUCKET)
        print(f"local S3 server: {s3_url} buckets {BUCKET}, {FEDERATED_BUCKET}")

        object_store = work / "object-store.yaml"  # the Thanos format users already give Kubecost
        object_store.write_text(
            yaml.safe_dump(
                {
                    "type": "S3",
                    "config": {
                        "bucket": BUCKET,
                        "endpoint": f"127.0.0.1:{s3_port}",
                        "insecure": True,
                        "region": "us-east-1",
                        "access_key": "demo",
                        "secret_key": "demo",
                    },
                    "prefix": "demo",
                }
            )
        )
        federated_store = work / "federated-store.yaml"  # what Kubecost's federated clusters are given
        federated_store.write_text(
            yaml.safe_dump(
                {
                    "type": "S3",
                    "config": {
                        "bucket": FEDERATED_BUCKET,
                        "endpoint": f"127.0.0.1:{s3_port}",
                        "insecure": True,
                        "region": "us-east-1",
                        "access_key": "demo",
                        "secret_key": "demo",
                    },
                }
            )
        )
        config = work / "kubecost-etl.yaml"
        # Manual only here, so unpausing doesn't queue scheduled runs ahead of the demo's own.
        config.write_text(
            yaml.safe_dump(
                {
                    "backup_schedule": None,
                    "federate_schedule": None,
                    "defaults": {"federated": {"object_store": {"config_file": str(federated_store)}}},
                    "clusters": [
                        {
                            "id": "demo-cluster",
                            "kubeconfig": str(sim.kubeconfig),
                            "backup": {"object_store": {"config_file": str(object_store)}},
                        },
                        {"id": "demo-cluster-2", "kubeconfig": str(sim2.kubeconfig)},
                    ],
                }
            )
        )

        home = work / "airflow"
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone's children need it
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(opts.port),
            # Task processes reach the API server here; the default assumes port 8080 (--port broke runs).
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{opts.port}/execution/",
            "KUBECOST_ETL_CONFIG": str(config),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        }
        print("starting airflow standalone (about a minute)...")
        standalone = start(
            stack, [str(VENV_BIN / "airflow"), "standalone"], work / "logs" / "airflow.log", env
        )
        ui = f"http://127.0.0.1:{opts.port}"
        wait_for(
            "the Airflow API server",
            lambda: urllib.request.urlopen(f"{ui}/api/v2/monitor/health", timeout=5),
            240,
            standalone,
        )
        expected = {
            p.stem for p in (REPO / "dags").glob("kubecost_etl_*.py")
        }  # each file is named by its DAG
        wait_for(
            "the project's DAGs to be parsed", lambda: expected <= set(project_dags(env)), 180, standalone
        )
        for dag_id in project_dags(env):  # all of them: a run triggered from the UI must not wait queued
            airflow(env, "dags", "unpause", dag_id)

        def run_once(dag_id: str, conf: dict | None = None) -> tuple[str, str]:
            wait_for(
                f"the DAG {dag_id} to be parsed",
                lambda: dag_id in airflow(env, "dags", "list", "-o", "plain"),
                180,
                standalone,
            )
            airflow(env, "dags", "unpause", dag_id)
            run_id = f"demo__{time.strftime('%Y%m%dT%H%M%S')}"
            airflow(
                env,
                "dags",
                "trigger",
                dag_id,
                "--run-id",
                run_id,
                *(["-c", json.dumps(conf)] if conf else []),
            )
            print(f"triggered {dag_id} run {run_id}; waiting for it to finish...")

            def run_state():
                out = airflow(env, "dags", "list-runs", dag_id, "-o", "json")
                # The CLI may print warnings on stdout before its JSON: take the JSON line.
                runs = json.loads(next(line for line in out.splitlines() if line.startswith("[")))
                state = next((r["state"] for r in runs if r["run_id"] == run_id), None)
                return state if state in ("success", "failed") else None

            return run_id, wait_for(f"the {dag_id} run", run_state, 900, standalone)

        run_id, state = run_once(DAG_ID, {"clusters": ["demo-cluster"]})
        federate_run_id, federate_state = run_once(FEDERATE_DAG_ID)
        password_file = home / "simple_auth_manager_passwords.json.generated"
        login = json.loads(password_file.read_text()) if password_file.exists() else {}
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])
        ]
        manifests = [k for k in keys if k.endswith("manifest.json")]
        print("\n" + "=" * 72)
        print(f"backup run {run_id}: {state.upper()}")
        credentials = ", ".join(f"{u} / {p}" for u, p in login.items())
        print(f"Airflow UI:   {ui}   login: {credentials}")
        print(f'status page:  {ui}/kubecost-etl/  ("Kubecost ETL" in the UI\'s navigation; same login)')
        print(f"bucket:       s3://{BUCKET} at {s3_url}: {len(keys)} objects, snapshots: {manifests}")
        if manifests:
            manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[-1])["Body"].read())
            print(
                f"snapshot:     {manifest['snapshot_id']}: {len(manifest['files'])} files, "
                f"{manifest['stats']['total_bytes'] / 1e6:.1f} MB -> "
                f"{manifest['stats']['stored_bytes'] / 1e6:.1f} MB stored"
            )
        federated = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=FEDERATED_BUCKET)
            for o in page.get("Contents", [])
        ]
        print(f"federate run {federate_run_id}: {federate_state.upper()}")
        for cluster_id in ("demo-cluster", "demo-cluster-2"):
            mine = [k for k in federated if k.startswith(f"federated/{cluster_id}/etl/bingen/")]
            print(
                f"federated:    s3://{FEDERATED_BUCKET}/federated/{cluster_id}/etl/bingen/: "
                f"{len(mine)} raw files"
            )
        print(f"logs:         {work / 'logs'}; Airflow task logs under {home / 'logs'}")
        print(f"try:          KUBECONFIG={sim.kubeconfig} kubectl get pods -n kubecost")
        print("=" * 72)
        if opts.exit_after_run:
            return 0 if state == federate_state == "success" else 1
        print("Everything keeps running; press Ctrl-C to stop it all.")
        try:
            while standalone.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started was stopped while unwinding
        print("\nstopped everything the demo started")
        sys.exit(130)
