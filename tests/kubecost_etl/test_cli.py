"""``python -m kubecost_etl check-config FILE``, run as operators run it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET = "Zq8TkXr2Wv9LmN4pS7dE"


def check_config(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "kubecost_etl", "check-config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path, config: dict) -> Path:
    path = tmp_path / "kubecost-etl.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def good(tmp_path) -> dict:
    return {
        "backup_schedule": "30 2 * * 1-5",
        "alerts": {"notifier": "none"},
        "defaults": {
            "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path)}}}
        },
        "clusters": [{"id": "prod-east", "kubernetes_conn_id": "k8s_prod"}, {"id": "dev"}],
    }


def test_a_valid_file_exits_0_with_a_summary(tmp_path):
    done = check_config(write(tmp_path, good(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("valid: ") and "2 cluster(s); backup_schedule 30 2 * * 1-5" in done.stdout
    assert "prod-east: kubecost/app=cost-analyzer via k8s_prod; backups to FILESYSTEM" in done.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.update(backup_schedule="0 25 * * *"),
            "backup_schedule: '0 25 * * *' is not a valid cron expression",
        ),
        (
            lambda c: c.update(backup_schedule="@fortnightly"),
            "backup_schedule: '@fortnightly' is not an Airflow preset",
        ),
        (lambda c: c.update(backup_schedule="0 2 * *"), "backup_schedule: '0 2 * *' has 4 field(s)"),
        (lambda c: c["clusters"][1].update(id="prod-east"), "cluster 'prod-east': id: duplicate"),
        (
            lambda c: c["clusters"][1].update(use_debug_container="sometimes"),
            "cluster 'dev': use_debug_container: 'sometimes' is not one of auto, always, never",
        ),
        (
            lambda c: c["defaults"]["backup"]["object_store"]["config"].update(prefix="x"),
            "cluster 'prod-east': backup.object_store: inline object_store: "
            "config.prefix: prefix must be a top-level key",
        ),
    ],
)
def test_a_mistake_exits_1_naming_the_cluster_and_the_field(tmp_path, change, message):
    config = good(tmp_path)
    change(config)
    done = check_config(write(tmp_path, config))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("invalid: ") and message in done.stderr


def test_a_yaml_mistake_is_located_without_quoting_the_secret_on_its_line(tmp_path):
    path = tmp_path / "kubecost-etl.yaml"
    path.write_text(
        "clusters:\n  - id: a\n"
        f'    backup: {{object_store: {{type: S3, config: {{secret_key: "{SECRET}" x}}}}}}\n'
    )
    done = check_config(path)
    assert done.returncode == 1 and "is not valid YAML: line 3, column " in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_missing_file_exits_1(tmp_path):
    done = check_config(tmp_path / "absent.yaml")
    assert done.returncode == 1 and "cannot read configuration" in done.stderr
