"""One real Airflow API server (SQLite, SimpleAuthManager) with the project's plugin, shared by the
plugin tests.

It serves a simulated cluster backed up by a real ``airflow dags test kubecost_etl_backup`` run in the
same metadata DB, and a second cluster whose bucket never answers (a socket that accepts and stays silent).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir
from tests.servers import free_loopback_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CLUSTER, DEAD = "cluster-a", "cluster-dead"
PASSWORD = "test-password-not-secret"
DEAD_BUCKET_SECRET = "dead-bucket-secret-key-1234"


@dataclass
class StatusServer:
    url: str
    token: str
    etl: Path
    store: Path
    sim: SimulatorProcess
    log: Path

    def get(self, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if cookie:
            request.add_header("Cookie", f"_token={cookie}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def _wait(condition, what: str, timeout: float, log: Path, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if condition():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def status_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("status-server")
    etl = make_etl_dir(root, days=5, hourly_hours=6, file_bytes=20_000, seed=11)
    sim = SimulatorProcess(etl, root / "sim").start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts connections (the kernel does), never answers
    store = root / "store"
    config = root / "kubecost-etl.yaml"
    config.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "id": CLUSTER,
                        "kubeconfig": str(sim.kubeconfig),
                        "hourly_hours": 6,
                        "backup": {
                            "object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}
                        },
                    },
                    {
                        "id": DEAD,
                        "kubeconfig": str(sim.kubeconfig),
                        "hourly_hours": 6,
                        "backup": {
                            "object_store": {
                                "type": "S3",
                                "config": {
                                    "bucket": "b",
                                    "endpoint": f"127.0.0.1:{silent.getsockname()[1]}",
                                    "insecure": True,
                                    "access_key": "dead-access",
                                    "secret_key": DEAD_BUCKET_SECRET,
                                },
                            }
                        },
                    },
                ]
            }
        )
    )
    home = root / "airflow-home"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    port = free_loopback_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO / "simulator"), str(REPO)]),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "plugin-test-jwt-secret-" + os.urandom(8).hex(),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "KUBECOST_ETL_CONFIG": str(config),
        "KUBECOST_ETL_STATUS_CACHE_SECONDS": "0",  # every request sees the pod as it is now
        "KUBECOST_ETL_STATUS_TIMEOUT_SECONDS": "12",
        "AWS_MAX_ATTEMPTS": "1",
    }
    log = root / "airflow.log"

    def airflow(*args: str, timeout: float = 300) -> None:
        with log.open("a") as out:
            done = subprocess.run(
                ["timeout", "-k", "10", str(timeout), str(VENV_BIN / "airflow"), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        assert done.returncode == 0, f"airflow {args} failed:\n{log.read_text()[-3000:]}"

    airflow("db", "migrate")
    with log.open("a") as out:
        server = subprocess.Popen(
            [
                str(VENV_BIN / "airflow"),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url + "/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        # While the server starts: a real backup run in its metadata DB (only the simulated cluster).
        airflow("dags", "test", "kubecost_etl_backup", "-c", json.dumps({"clusters": [CLUSTER]}), timeout=400)
        _wait(healthy, "the API server", 120, log, server)
        request = urllib.request.Request(
            url + "/auth/token",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"username": "admin", "password": PASSWORD}).encode(),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        yield StatusServer(url, token, etl, store, sim, log)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        sim.stop()
        silent.close()
