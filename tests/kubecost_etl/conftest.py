"""Fixtures for the domain package's tests: real object-store servers (session-scoped, started
only when a test asks), a fresh store per test (`store` over all four kinds, `fs_store`), and the
Kubecost cluster simulator (`simulator`).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.servers import REPO_ROOT, AzuriteServer, GcsEmulatorServer, MotoS3Server

from .stores_under_test import STORE_KINDS, StoreUnderTest, make_azure, make_filesystem, make_gcs, make_s3

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


@pytest.fixture(params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store(request, store_kind, unique_bucket_name, tmp_path) -> StoreUnderTest:
    if store_kind == "s3":
        return make_s3(request.getfixturevalue("moto_s3_server"), unique_bucket_name)
    if store_kind == "gcs":
        return make_gcs(request.getfixturevalue("gcs_emulator_server"), unique_bucket_name)
    if store_kind == "azure":
        return make_azure(request.getfixturevalue("azurite_server"), unique_bucket_name)
    return make_filesystem(tmp_path / "store-root")


@pytest.fixture
def fs_store(tmp_path):
    """A plain local-directory store, for tests about backup logic rather than storage kinds."""
    return make_filesystem(tmp_path / "fs-store").store
