"""Test-wide setup: an isolated Airflow home (SQLite) and the real servers tests share.

Servers are session-scoped and start only when a test asks for them: `moto_s3_server`,
`azurite_server`, `gcs_emulator_server` (see tests/servers.py), plus `unique_bucket_name`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.servers import AzuriteServer, GcsEmulatorServer, MotoS3Server

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration when first imported: set it before any test imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="kubecost-etl-airflow-")
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})
os.environ.pop("KUBECOST_ETL_CONFIG", None)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB, once per session (dag.test() needs one)."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME


AZURITE_INSTALL_SCRIPT = REPO / "scripts" / "install-azurite.sh"


@pytest.fixture(scope="session")
def moto_s3_server():
    with MotoS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server():
    if not AzuriteServer.is_installed():
        if shutil.which("npm") is None:
            pytest.skip(
                "Azurite is not installed and npm is missing: run scripts/install-azurite.sh on a machine with npm"
            )
        # npm is here, so Azurite can and must be installed: a failing install fails the tests.
        subprocess.run(["bash", str(AZURITE_INSTALL_SCRIPT)], check=True, timeout=600)
    with AzuriteServer() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_emulator_server():
    with GcsEmulatorServer() as server:
        yield server


@pytest.fixture
def unique_bucket_name() -> str:
    """A bucket/container name valid on S3, GCS and Azure (lowercase, 3-63 chars)."""
    return f"test-{uuid.uuid4().hex[:16]}"
