"""`object_store_from_connection` with connections from AIRFLOW_CONN_<ID> env vars, against the
real emulators.
"""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient
from kubecost_etl.airflow.hooks.object_store import object_store_from_connection
from kubecost_etl.storage.azure import AzureStore
from kubecost_etl.storage.base import StorageConfigError
from kubecost_etl.storage.gcs import GCSStore
from kubecost_etl.storage.s3 import S3Store

from tests.servers import MOTO_ACCESS_KEY, MOTO_REGION, MOTO_SECRET_KEY


def set_connection(monkeypatch, conn_id: str, connection: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def round_trip(store) -> bytes:
    store.put_bytes("probe/object", b"through an Airflow connection")
    return store.read_bytes("probe/object")


def test_aws_connection_with_endpoint_url(monkeypatch, moto_s3_server, unique_bucket_name):
    direct = moto_s3_server.client()
    direct.create_bucket(Bucket=unique_bucket_name)
    set_connection(
        monkeypatch,
        "backups_s3",
        {
            "conn_type": "aws",
            "login": MOTO_ACCESS_KEY,
            "password": MOTO_SECRET_KEY,
            "extra": {"endpoint_url": moto_s3_server.url, "region_name": MOTO_REGION},
        },
    )

    store = object_store_from_connection("backups_s3", unique_bucket_name, "clusters/prod")

    assert isinstance(store, S3Store)
    assert store.description == f"s3://{unique_bucket_name}/clusters/prod"
    assert round_trip(store) == b"through an Airflow connection"
    raw = direct.get_object(Bucket=unique_bucket_name, Key="clusters/prod/probe/object")["Body"].read()
    assert raw == b"through an Airflow connection"


def test_google_connection_against_the_emulator(monkeypatch, gcs_emulator_server, unique_bucket_name):
    gcs_emulator_server.client().create_bucket(unique_bucket_name)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_server.url)  # GCSHook has no endpoint setting
    set_connection(
        monkeypatch,
        "backups_gcs",
        {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "test-project"}},
    )

    store = object_store_from_connection("backups_gcs", unique_bucket_name, "clusters/prod")

    assert isinstance(store, GCSStore)
    assert round_trip(store) == b"through an Airflow connection"
    raw = gcs_emulator_server.client().bucket(unique_bucket_name).blob("clusters/prod/probe/object")
    assert raw.download_as_bytes() == b"through an Airflow connection"


def test_wasb_connection_with_a_connection_string(monkeypatch, azurite_server, unique_bucket_name):
    container = BlobServiceClient.from_connection_string(azurite_server.connection_string()).create_container(
        unique_bucket_name
    )
    set_connection(
        monkeypatch,
        "backups_wasb",
        {"conn_type": "wasb", "extra": {"connection_string": azurite_server.connection_string()}},
    )

    store = object_store_from_connection("backups_wasb", unique_bucket_name, "clusters/prod")

    assert isinstance(store, AzureStore)
    assert round_trip(store) == b"through an Airflow connection"
    assert container.download_blob("clusters/prod/probe/object").readall() == b"through an Airflow connection"


def test_missing_connection_is_named():
    with pytest.raises(StorageConfigError) as raised:
        object_store_from_connection("no_such_backup_conn", "bucket")

    assert "'no_such_backup_conn' is not defined" in str(raised.value)
    assert "AIRFLOW_CONN_NO_SUCH_BACKUP_CONN" in str(raised.value)


def test_unsupported_connection_type_is_named(monkeypatch):
    set_connection(monkeypatch, "backups_http", {"conn_type": "http", "host": "example.invalid"})

    with pytest.raises(StorageConfigError) as raised:
        object_store_from_connection("backups_http", "bucket")

    assert "has type 'http'" in str(raised.value)
    assert "aws, google_cloud_platform, wasb" in str(raised.value)
