"""Federated buckets on the real servers (moto, Azurite, the GCS emulator), each reached through a
recording proxy (tests/servers.py's FaultProxy) so tests count the write requests the server saw,
plus a cluster simulator serving a generated ETL tree with the federation extras."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubecost_etl.federation.owner import Owner
from kubecost_etl.federation.settings import FederatedSettings, Layout
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import resolve_exec_target
from kubecost_etl.storage.base import ObjectStore

from tests.etl_trees import add_federation_extras, make_etl_dir
from tests.servers import FaultProxy

from ..stores_under_test import TEST_PART_SIZE

USER_PREFIX = "tenant-a"  # the federated-store.yaml's top-level prefix
MUTATING = ("PUT", "POST", "PATCH", "DELETE")


@dataclass
class Bucket:
    kind: str
    store: ObjectStore  # through the proxy
    proxy: FaultProxy | None
    raw_read: Callable[[str], bytes]  # full object name -> bytes, with the raw SDK, bypassing the proxy
    raw_names: Callable[[], list[str]]

    def writes(self) -> list[tuple[str, str]]:
        """Mutating requests the server received through the proxy since the last reset."""
        return [(r.method, r.path) for r in self.proxy.requests if r.method in MUTATING] if self.proxy else []

    def reset(self) -> None:
        if self.proxy:
            self.proxy.clear()


def _s3(server, name: str) -> Bucket:
    from kubecost_etl.storage.s3 import S3Store

    server.client().create_bucket(Bucket=name)
    proxy = FaultProxy(server.url).start()
    store = S3Store(server.client(endpoint_url=proxy.url), name, USER_PREFIX, part_size=TEST_PART_SIZE)
    raw = server.client()

    def names() -> list[str]:
        pages = raw.get_paginator("list_objects_v2").paginate(Bucket=name)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    return Bucket("s3", store, proxy, lambda key: raw.get_object(Bucket=name, Key=key)["Body"].read(), names)


def _gcs(server, name: str) -> Bucket:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from kubecost_etl.storage.gcs import GCSStore

    raw = server.client()
    raw.create_bucket(name)
    proxy = FaultProxy(server.url).start()
    client = storage.Client(
        project="test-project", credentials=AnonymousCredentials(), client_options={"api_endpoint": proxy.url}
    )
    store = GCSStore(client, name, USER_PREFIX, part_size=TEST_PART_SIZE)
    return Bucket(
        "gcs",
        store,
        proxy,
        lambda key: raw.bucket(name).blob(key).download_as_bytes(),
        lambda: [b.name for b in raw.list_blobs(name)],
    )


def _azure(server, name: str) -> Bucket:
    from azure.storage.blob import BlobServiceClient
    from kubecost_etl.storage.azure import AzureStore

    raw = BlobServiceClient.from_connection_string(server.connection_string()).create_container(name)
    proxy = FaultProxy(server.url).start()
    proxied = BlobServiceClient.from_connection_string(server.connection_string(proxy.url))
    store = AzureStore(proxied.get_container_client(name), USER_PREFIX, part_size=TEST_PART_SIZE)
    return Bucket(
        "azure",
        store,
        proxy,
        lambda key: raw.download_blob(key).readall(),
        lambda: [b.name for b in raw.list_blobs()],
    )


def _filesystem(root: Path) -> Bucket:
    from kubecost_etl.storage.filesystem import FilesystemStore

    store = FilesystemStore(root, USER_PREFIX, part_size=TEST_PART_SIZE)
    return Bucket(
        "filesystem",
        store,
        None,
        lambda key: (root / key).read_bytes(),
        lambda: sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ),
    )


@pytest.fixture(params=["s3", "gcs", "azure"])
def bucket(request, unique_bucket_name, tmp_path):
    kind = request.param
    server = request.getfixturevalue(
        {"s3": "moto_s3_server", "gcs": "gcs_emulator_server", "azure": "azurite_server"}[kind]
    )
    made = {"s3": _s3, "gcs": _gcs, "azure": _azure}[kind](server, unique_bucket_name)
    yield made
    made.proxy.stop()


@pytest.fixture
def s3_bucket(moto_s3_server, unique_bucket_name):
    made = _s3(moto_s3_server, unique_bucket_name)
    yield made
    made.proxy.stop()


@pytest.fixture
def fs_bucket(tmp_path):
    return _filesystem(tmp_path / "fs-bucket")


@dataclass
class Cluster:
    etl_dir: Path
    extras: dict[str, str]
    core: object
    target: object
    now: float


@pytest.fixture
def cluster(tmp_path, simulator) -> Cluster:
    now = time.time()
    etl_dir = make_etl_dir(tmp_path / "pvc", days=5, hourly_hours=30, file_bytes=4000)
    extras = add_federation_extras(etl_dir, now)
    sim = simulator(etl_dir)
    core = sim.core_v1()
    pod = find_cost_model_pod(core, "kubecost", "app=cost-analyzer")
    return Cluster(etl_dir, extras, core, resolve_exec_target(core, pod, "/var/configs/db/etl"), now)


def settings(**kw) -> FederatedSettings:
    from kubecost_etl.config import ObjectStoreRef

    return FederatedSettings(
        **{
            "object_store": ObjectStoreRef(inline={}),
            "cluster_id": "prod-east",
            "layout": Layout.FEDERATED,
            "retention": {},
            **kw,
        }
    )


ME = Owner("prod-east", "install-a")
