"""Test-wide setup: an isolated Airflow home (SQLite) and the real servers tests share.

Servers are session-scoped and start only when a test asks for them: `moto_s3_server`,
`azurite_server`, `gcs_emulator_server` (see tests/servers.py), plus `unique_bucket_name`.
The Kubecost cluster simulator: `simulator` (a factory: `simulator(etl_dir=None, **options)`
starts one, stopped after the test), `etl_dir` (a small generated tree at `<tmp>/db/etl`, the
pod's `/var/configs/db/etl`), `big_etl_dir` (~200 MB, once per session), `kubectl`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir
from tests.servers import AzuriteServer, GcsEmulatorServer, MotoS3Server

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration when first imported: set it before any test imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="kubecost-etl-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
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
                "Azurite is not installed and npm is missing: "
                "run scripts/install-azurite.sh on a machine with npm"
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


@pytest.fixture
def etl_dir(tmp_path: Path) -> Path:
    return make_etl_dir(tmp_path)


@pytest.fixture(scope="session")
def big_etl_dir(tmp_path_factory) -> Path:
    """About 200 MB of incompressible files, written fast (a random block, rotated per file)."""
    etl_dir = tmp_path_factory.mktemp("big") / "db" / "etl"
    block = os.urandom(1 << 20)
    for index in range(100):
        path = (
            etl_dir
            / "bingen"
            / "allocations"
            / "1h"
            / f"{1_700_000_000 + index * 3600}-{1_700_003_600 + index * 3600}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        rotated = block[index:] + block[:index]
        path.write_bytes(rotated + rotated[::-1])
    return etl_dir


@pytest.fixture
def simulator(tmp_path: Path):
    started: list[SimulatorProcess] = []

    def start(etl_dir: Path | None = None, **options) -> SimulatorProcess:
        index = len(started)
        etl = etl_dir or make_etl_dir(tmp_path / f"cluster{index}")
        simulator = SimulatorProcess(etl, tmp_path / f"sim{index}", **options)
        started.append(simulator)
        return simulator.start()

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def kubectl():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (shutil.which('kubectl') is None)")
    return shutil.which("kubectl")
