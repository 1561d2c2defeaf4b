"""Real object-store servers (session-scoped), shared by the storage and the Airflow hook tests.

Fixtures: `moto_s3_server`, `azurite_server`, `gcs_emulator_server` (each a started
`tests.servers` server object) and `unique_bucket_name`. A server starts only when a test asks
for it. These can move to tests/conftest.py unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.servers import REPO_ROOT, AzuriteServer, GcsEmulatorServer, MotoS3Server

AZURITE_INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-azurite.sh"


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
