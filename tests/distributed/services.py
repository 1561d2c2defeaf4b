"""A CeleryExecutor Airflow on this machine, without Docker: PostgreSQL and Redis from Debian's
packages, and every Airflow component as its own process from the venv.

- ``ensure_debian_packages()``: installs ``postgresql`` and ``redis-server`` when their binaries are
  missing (``apt-get update`` first; service start-up blocked while installing), or skips with the
  reason when that cannot be done here (not root, no apt-get). Under ``CI`` a failed install fails.
- ``PostgresServer`` / ``RedisServer``: on loopback, free ports, data in a temp dir.
- ``AirflowDeployment``: ``airflow db migrate``, then an API server, a scheduler, a DAG processor,
  a triggerer and Celery workers (each with its own name, which tasks record as their hostname).

Every process runs in its own process group and carries ``KUBECOST_ETL_DEPLOYMENT_RUN`` in its
environment; ``leftover_processes()`` finds any that outlived the teardown.
Waits are for conditions with deadlines (a port answering, a log line, an HTTP status), never sleeps
of a fixed length.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_loopback_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RUN_MARKER = "KUBECOST_ETL_DEPLOYMENT_RUN"
STOP_SECONDS = 20


class DeploymentError(AssertionError):
    pass


def wait_for(condition, what: str, timeout: float, interval: float = 0.2, diagnose=lambda: ""):
    """Poll ``condition()`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}{diagnose()}")
        time.sleep(interval)  # polling a condition with a deadline, not timing the test


# ------------------------------------------------------------------------------ packages


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_debian_packages() -> Path:
    """The PostgreSQL bin folder; installs postgresql and redis-server from Debian first if needed."""
    missing = [
        name
        for name, present in (("postgresql", _postgres_bin()), ("redis-server", shutil.which("redis-server")))
        if not present
    ]
    if missing:
        reason = None
        if os.geteuid() != 0:
            reason = "not root"
        elif shutil.which("apt-get") is None:
            reason = "no apt-get on this machine"
        if reason:
            pytest.skip(
                f"{' and '.join(missing)} not installed and cannot be installed ({reason}): "
                f"apt-get install {' '.join(missing)}, then run make test-distributed"
            )
        _apt_install(missing)
    return _postgres_bin()


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Debian starts a package's service on install (a system postgres on 5432): not wanted here.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                message = f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}"
                if os.environ.get("CI"):
                    raise DeploymentError(message)
                pytest.skip(f"cannot install {' '.join(packages)}: {message}")
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ processes


class Process:
    """One server process in its own process group, its output in ``log``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log: Path,
        env: dict,
        user: str | None = None,
        cwd: Path | None = None,
    ):
        self.name = name
        self.log = log
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def output_has(self, text: str) -> bool:
        if not self.alive():
            raise DeploymentError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
        return text in self.tail(200_000)

    def terminate(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """SIGTERM to the whole group; SIGKILL to what is left of it after a grace period."""
        self.terminate()
        try:
            self.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # the leader may be gone while its children are not
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)


def leftover_processes(run_id: str) -> list[int]:
    """Processes still carrying this run's marker in their environment."""
    marker = f"{RUN_MARKER}={run_id}".encode()
    found = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if marker in Path(environ).read_bytes().split(b"\0"):
                found.append(int(environ.split("/")[2]))
        except OSError:
            continue
    return sorted(pid for pid in found if pid != os.getpid())


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path, env: dict):
        self.bin_dir = bin_dir
        self.root = root
        self.env = env
        self.port = free_loopback_port()
        self.process: Process | None = None
        self.user = "postgres" if os.geteuid() == 0 else None  # postgres refuses to run as root

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def start(self) -> PostgresServer:
        data = self.root / "pgdata"
        data.mkdir(parents=True)
        if self.user:
            shutil.chown(data, self.user, self.user)
        initdb = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        if self.user:
            initdb = ["runuser", "-u", self.user, "--", *initdb]
        done = subprocess.run(
            initdb, capture_output=True, text=True, timeout=120, env=self.env, cwd=self.root
        )
        if done.returncode != 0:
            raise DeploymentError(f"initdb failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        self.process = Process(
            "postgres",
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            self.root / "postgres.log",
            self.env,
            self.user,
            cwd=self.root,
        )
        wait_for(
            lambda: self.process.output_has("database system is ready to accept connections"),
            "PostgreSQL to accept connections",
            60,
        )
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class RedisServer:
    def __init__(self, root: Path, env: dict):
        self.root = root
        self.env = env
        self.port = free_loopback_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = Process(
            "redis",
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            self.root / "redis.log",
            self.env,
            cwd=self.root,
        )
        wait_for(
            lambda: self.process.output_has("Ready to accept connections"), "Redis to accept connections", 30
        )
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()


# ------------------------------------------------------------------------------- Airflow


class AirflowDeployment:
    """The CeleryExecutor layout of the official docker-compose, as local processes."""

    def __init__(
        self,
        root: Path,
        base_env: dict,
        database_url: str,
        broker_url: str,
        result_backend: str,
        extra_env: dict,
    ):
        self.root = root
        self.home = root / "airflow-home"
        self.home.mkdir(parents=True)
        self.api_port = free_loopback_port()
        from cryptography.fernet import Fernet

        self.env = {
            **base_env,
            "AIRFLOW_HOME": str(self.home),
            "PATH": f"{VENV_BIN}{os.pathsep}{base_env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO / "simulator"), str(REPO)]),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(
                32
            ),  # shared by every component, as in compose
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",  # noqa: E501
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # loopback only, torn down after
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.distributed.worker_identity.hostname",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_loopback_port()),
            **extra_env,
        }
        self.processes: dict[str, Process] = {}

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        return done

    def start(self, workers: list[str], concurrency: int = 2) -> AirflowDeployment:
        self.airflow("db", "migrate")
        components = {
            "api-server": [
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                "1",
            ],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        for worker in workers:
            components[worker] = [
                "celery",
                "worker",
                "--celery-hostname",
                f"{worker}@%h",
                "--concurrency",
                str(concurrency),
                "--pid",
                str(self.root / f"{worker}.pid"),
            ]
        for name, args in components.items():
            env = dict(self.env)
            if name in workers:
                env["KUBECOST_ETL_TEST_HOSTNAME"] = name  # what its tasks record as their hostname
                env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_loopback_port())
            self.processes[name] = Process(
                name, [str(VENV_BIN / "airflow"), *args], self.root / f"{name}.log", env, cwd=self.root
            )
        wait_for(
            self._healthy,
            "the API server, scheduler, DAG processor and triggerer to report healthy",
            180,
            interval=1,
            diagnose=self.diagnose,
        )
        for worker in workers:
            wait_for(
                lambda w=worker: (
                    self.processes[w].output_has(f"{w}@") and self.processes[w].output_has(" ready.")
                ),
                f"Celery worker {worker} to be ready",
                120,
                interval=0.5,
                diagnose=self.diagnose,
            )
        return self

    def _healthy(self) -> bool:
        for process in self.processes.values():
            if not process.alive():
                raise DeploymentError(
                    f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
                )
        try:
            health = self.api("GET", "/api/v2/monitor/health")
        except (OSError, DeploymentError):
            return False
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def diagnose(self) -> str:
        return "".join(f"\n--- {p.name} ---\n{p.tail(1500)}" for p in self.processes.values())

    def api(self, method: str, path: str, body: dict | None = None, ok: tuple = (200,)) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code in ok:
                return {}
            raise DeploymentError(f"{method} {path}: HTTP {error.code}: {error.read()[:2000]!r}") from None

    def stop(self) -> None:
        for process in self.processes.values():  # all at once: each has its own grace period
            process.terminate()
        for process in self.processes.values():
            process.stop()
