"""Fixtures for the domain package's tests: a fresh store per test (`store` over all four kinds on
real servers, `fs_store` for a local directory)."""

from __future__ import annotations

import pytest

from .stores_under_test import STORE_KINDS, StoreUnderTest, make_azure, make_filesystem, make_gcs, make_s3


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
