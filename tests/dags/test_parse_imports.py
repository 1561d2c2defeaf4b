"""Parsing a DAG file imports no client library: each file is executed in a fresh interpreter after
`import airflow.sdk` (what the DAG processor and every task start pay), and the modules it added are
compared with the heavy ones. `airflow.sdk` itself already imports some (zstandard, through httpx):
those are hidden while the file runs (an `import` of them fails), so the DAG file cannot use them
unseen either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = (
    "kubernetes",
    "kubernetes_asyncio",
    "boto3",
    "botocore",
    "google.cloud.storage",
    "azure.storage.blob",
    "zstandard",
    "requests",
    "websocket",
)

# Runs in the child: import airflow.sdk, hide the heavy modules it loaded (None in sys.modules makes
# their import raise ImportError), execute the DAG file, report what it added and what was hidden.
PROBE = """
import json, runpy, sys, time
import airflow.sdk  # noqa: F401
heavy = json.loads(sys.argv[2])
hidden = {m: sys.modules[m] for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)}
sys.modules.update(dict.fromkeys(hidden))
before = set(sys.modules)
started = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_file_under_test")
elapsed = time.perf_counter() - started
added = sorted(set(sys.modules) - before)
sys.modules.update(hidden)
print(json.dumps({"added": added, "hidden": sorted(hidden), "ms": elapsed * 1000}))
"""


def parse_in_fresh_interpreter(path: Path, env: dict | None = None) -> dict:
    """{"added": modules the file imported beyond airflow.sdk's, "hidden": heavy modules airflow.sdk loaded,
    "ms": time to execute it}."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def heavy_modules(added: list[str]) -> list[str]:
    return [m for m in added if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_file_imports_no_client_library(path, tmp_path):
    config = tmp_path / "kubecost-etl.yaml"  # a config naming a cluster: parsing must not reach it
    config.write_text("clusters: [{id: x, kubeconfig: /nonexistent}]\n")
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "KUBECOST_ETL_CONFIG": str(config),
    }
    found = heavy_modules(parse_in_fresh_interpreter(path, env)["added"])
    assert found == [], f"{path.name} imports at parse time: {found}"


def test_a_heavy_module_airflow_sdk_already_loaded_cannot_be_used_unseen(tmp_path):
    """zstandard comes with `import airflow.sdk`; a DAG file importing it at top level still fails."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text("import zstandard  # noqa\nfrom airflow.sdk import dag\n")
    with pytest.raises(AssertionError, match="import of zstandard halted"):
        parse_in_fresh_interpreter(bad, {"AIRFLOW_HOME": str(tmp_path / "airflow")})


def test_the_check_sees_a_heavy_import(tmp_path):
    """The probe itself works: a DAG file importing boto3 at top level is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text("import boto3  # noqa\nfrom airflow.sdk import dag\n")
    added = parse_in_fresh_interpreter(bad, {"AIRFLOW_HOME": str(tmp_path / "airflow")})["added"]
    assert "boto3" in heavy_modules(added)


LIGHT_TASKS = """
import json, sys
import airflow.sdk  # noqa: F401
before = set(sys.modules)
from kubecost_etl.airflow.stages import backup
assert backup.select_clusters(None) == ["x"]
backup.report(
    ["x"], [{"cluster_id": "x", "snapshot_id": "s", "objects": 1, "rehashed": 1, "repository": "r"}]
)
print(json.dumps({"added": sorted(set(sys.modules) - before), "ms": 0}))
"""


def test_light_backup_tasks_import_no_client_library(tmp_path):
    """select_clusters and report start in a fresh task process: they must not pay for the Kubernetes
    client, the provider hooks or the object-store SDKs (seconds of start-up each)."""
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        "clusters: [{id: x, kubeconfig: /nonexistent, backup: {object_store: {type: S3, "
        "config: {bucket: b, endpoint: 'localhost:9', access_key: a, secret_key: s}}}}]\n"
    )
    probe = tmp_path / "light.py"
    probe.write_text(LIGHT_TASKS)
    env = {"AIRFLOW_HOME": str(tmp_path / "airflow"), "KUBECOST_ETL_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    added = json.loads(result.stdout.strip().splitlines()[-1])["added"]
    assert heavy_modules(added) == []
