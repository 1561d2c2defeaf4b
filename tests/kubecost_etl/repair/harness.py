"""A configured cluster on the simulator for repair tests, and fixtures that start one.

- ``RepairCluster``: the simulator plus a project configuration naming it (cluster ``sim``, a
  filesystem backup store, fast ``repair:`` settings: ``poll_seconds`` 0.05), ``configure`` to
  change that file, and helpers to read what the simulator was asked.
- fixtures ``repair_cluster_factory`` (``start(**SimulatorProcess options)``) and ``repair_cluster``.
- ``requested(window, step)``: the preflight and one step's request, as the DAG runs them.

Import the fixtures into a test module to use them: ``from tests.kubecost_etl.repair.harness import ...``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubecost_sim.etlgen import generate
from kubecost_sim.testing import SimulatorProcess

CLUSTER_ID = "sim"
FAST = {"poll_seconds": 0.05, "step_timeout_minutes": 2}  # the cluster's ``repair:`` mapping
DEADLINE_SECONDS = 30


@dataclass
class RepairCluster:
    sim: SimulatorProcess
    config_path: Path
    backup_dir: Path
    repair: dict = field(default_factory=lambda: dict(FAST))
    with_backup: bool = True

    def configure(self, with_backup: bool | None = None, **repair) -> None:
        """(Re)write the configuration file, with ``repair`` merged into the cluster's ``repair:`` mapping."""
        if with_backup is not None:
            self.with_backup = with_backup
        self.repair.update(repair)
        cluster: dict = {
            "id": CLUSTER_ID,
            "kubeconfig": str(self.sim.kubeconfig),
            "hourly_hours": 49,
            "repair": self.repair,
        }
        if self.with_backup:
            cluster["backup"] = {
                "object_store": {"type": "FILESYSTEM", "config": {"directory": str(self.backup_dir)}},
                "verify_sample": 2,
            }
        self.config_path.write_text(json.dumps({"clusters": [cluster]}))

    def core(self):
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.sim.api_client())

    def repair_calls(self) -> list[tuple[str, dict]]:
        """Repair requests as the cost-model received them, in order (not the API server's proxy hops)."""
        return [
            (entry["path"], entry["query"])
            for entry in self.sim.request_log_lines()
            if entry["path"].endswith("/repair") and not entry["path"].startswith("/api/")
        ]

    def wait_for_log(self, predicate, what: str) -> list[str]:
        """Poll the pod's log (through the API) until ``predicate(lines)``; fail after a deadline."""
        core, deadline = self.core(), time.monotonic() + DEADLINE_SECONDS
        while True:
            pod = self.sim.cost_model_pod()
            lines = core.read_namespaced_pod_log(pod, "kubecost", container="cost-model").splitlines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; log tail: {lines[-5:]}")
            time.sleep(0.05)  # polling a log with a deadline, not timing the test


@pytest.fixture
def repair_cluster_factory(tmp_path, monkeypatch):
    """``start(days=6, **SimulatorProcess options)``: a simulator the project configuration points at."""
    started: list[SimulatorProcess] = []

    def start(days: int = 6, **options) -> RepairCluster:
        root = tmp_path / f"cluster{len(started)}"
        etl_dir = root / "db" / "etl"
        generate(etl_dir, days=days, hourly_hours=49, file_bytes=2000, seed=5)
        options.setdefault("startup_timeout", 60)  # a loaded 2-core machine can take a while
        sim = SimulatorProcess(etl_dir, root / "sim", **options)
        started.append(sim)
        sim.start()
        cluster = RepairCluster(sim, root / "kubecost-etl.yaml", root / "backups")
        cluster.configure()
        monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(cluster.config_path))
        return cluster

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def repair_cluster(repair_cluster_factory) -> RepairCluster:
    return repair_cluster_factory()


def requested(window: str, step: str, profile: str = "v1") -> dict:
    """What the sensor of ``step`` watches: the preflight (no backup) and the step's request, run."""
    from kubecost_etl.airflow.stages import repair as stages

    plan = stages.preflight(
        {"cluster": CLUSTER_ID, "window": window, "profile": profile, "backup_first": False}
    )
    return stages.request_step(plan, step)
