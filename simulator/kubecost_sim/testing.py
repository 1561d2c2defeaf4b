"""Run the simulator as a subprocess from tests and the demo.

    with SimulatorProcess(etl_dir=tmp_path / "db" / "etl", workdir=tmp_path / "sim") as sim:
        subprocess.run(["kubectl", "get", "pods"], env=sim.kubectl_env())
        sim.set_faults(exec_cut_after_bytes=1 << 20)
        sim.set_faults(prometheus_data_from=int(time.time()) - 3 * 86400)  # Prometheus holds 3 days only
        new_pod = sim.restart_pod()

The process is started on free ports, the ready JSON line is awaited with a deadline, and the
process is stopped (SIGTERM, then SIGKILL) on exit, also when the body failed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


class SimulatorError(RuntimeError):
    pass


class SimulatorProcess:
    def __init__(
        self,
        etl_dir: Path,
        workdir: Path,
        *,
        no_tar: bool = False,
        prometheus_retention: str = "15d",
        hourly_hours: int = 49,
        faults: dict | None = None,
        plain_http: bool = False,
        startup_timeout: float = 30.0,
        prometheus_retention_size: str | None = None,
        rbac_role: Path | None = None,
    ):
        self.etl_dir = Path(etl_dir)
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.request_log = self.workdir / "requests.jsonl"
        self.server_log = self.workdir / "simulator.log"
        self.startup_timeout = startup_timeout
        self.args = [
            "--etl-dir",
            str(self.etl_dir),
            "--kubeconfig",
            str(self.kubeconfig),
            "--request-log",
            str(self.request_log),
            "--work-dir",
            str(self.workdir / "cluster"),
            "--prometheus-retention",
            prometheus_retention,
            "--hourly-hours",
            str(hourly_hours),
        ]
        if prometheus_retention_size:
            self.args += ["--prometheus-retention-size", prometheus_retention_size]
        if no_tar:
            self.args.append("--no-tar")
        if plain_http:
            self.args.append("--plain-http")
        if rbac_role is not None:
            self.args += ["--rbac-role", str(rbac_role)]
        for name, value in (faults or {}).items():
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            for item in values:
                self.args += ["--" + name.replace("_", "-"), str(item)]
        self.process: subprocess.Popen | None = None
        self.ready: dict = {}
        self._ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SimulatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "kubecost_sim", "serve", *self.args]
        with open(self.server_log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._drain_stdout, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise SimulatorError(
                        f"simulator not ready after {self.startup_timeout} s{self._log_tail()}"
                    ) from None
                if not line:
                    raise SimulatorError(f"simulator exited with {self.process.wait()}{self._log_tail()}")
                if line.startswith(b"{"):
                    self.ready = json.loads(line)
                    break
        except BaseException:
            self.stop()
            raise
        if self.ready.get("ca_cert"):
            self._ssl = ssl.create_default_context(cafile=self.ready["ca_cert"])
        return self

    def _drain_stdout(self, lines: queue.Queue) -> None:
        for line in self.process.stdout:  # keeps reading so the child never blocks on a full pipe
            lines.put(line)
        lines.put(b"")

    def _log_tail(self) -> str:
        try:
            return ":\n" + self.server_log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    # --------------------------------------------------------------------------- urls

    @property
    def api_url(self) -> str:
        return self.ready["api"]

    @property
    def costmodel_url(self) -> str:
        """The model API, as port 9003 of the cost-model container (``/etl/...``)."""
        return self.ready["costmodel"]

    @property
    def frontend_url(self) -> str:
        """The frontend, as port 9090 (``/model/etl/...``)."""
        return self.ready["frontend"]

    @property
    def prometheus_url(self) -> str:
        return self.ready["prometheus"]

    @property
    def token(self) -> str:
        return self.ready["token"]

    @property
    def ca_cert(self) -> str | None:
        return self.ready.get("ca_cert")

    # -------------------------------------------------------------------------- admin

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.ready['admin']}/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30, context=self._ssl) as response:
            return json.loads(response.read())

    def set_faults(self, **changes) -> dict:
        return self.admin("POST", "faults", changes)

    def reset_faults(self) -> dict:
        return self.admin("DELETE", "faults")

    def faults(self) -> dict:
        return self.admin("GET", "faults")

    def restart_pod(self) -> str:
        """Rollout-restart the cost-model deployment; returns the new pod's name."""
        return self.admin("POST", "restart")["pod"]

    def end_ephemeral_containers(self, restart_cost_model: bool = False) -> list[str]:
        """End the cost-model pod's debug containers (their sleep ran out), or restart cost-model in place."""
        return self.admin("POST", "end-ephemeral-containers", {"restart_cost_model": restart_cost_model})[
            "ended"
        ]

    def state(self) -> dict:
        return self.admin("GET", "state")

    def cost_model_pod(self) -> str:
        return self.state()["cost_model_pod"]

    def append_log(self, *lines: str, container: str = "cost-model") -> None:
        self.admin("POST", "log", {"lines": list(lines), "container": container})

    def rbac_report(self) -> dict:
        """With ``rbac_role``: the Role's rules, what it grants, what was used by which rule, what
        was denied.
        """
        return self.admin("GET", "rbac")

    def request_log_lines(self) -> list[dict]:
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text().splitlines() if line.strip()]

    # ------------------------------------------------------------------------ clients

    def kubectl_env(self) -> dict[str, str]:
        """Environment for running kubectl against this cluster (own discovery cache)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kube-cache"),
        }

    def kubectl(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kubectl", *args],
            env=self.kubectl_env(),
            input=input,
            capture_output=True,
            timeout=timeout,
            check=check,
        )

    def api_client(self):
        """A ``kubernetes.client.ApiClient`` for this cluster (not the process-wide default)."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def core_v1(self):
        """A ``kubernetes.client.CoreV1Api`` for this cluster."""
        from kubernetes import client

        return client.CoreV1Api(self.api_client())
