"""Parsing and validating Thanos-format object-store.yaml, and building stores from it against
real servers.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest
import yaml
from azure.storage.blob import BlobServiceClient
from kubecost_etl.storage.azure import AzureStore
from kubecost_etl.storage.base import StorageConfigError
from kubecost_etl.storage.filesystem import FilesystemStore
from kubecost_etl.storage.gcs import GCSStore
from kubecost_etl.storage.objstore_config.build import build_store
from kubecost_etl.storage.objstore_config.models import AzureConfig, GCSConfig, S3Config
from kubecost_etl.storage.objstore_config.parse import load_objstore_config, parse_objstore_config
from kubecost_etl.storage.s3 import S3Store

from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY, MOTO_ACCESS_KEY, MOTO_SECRET_KEY

SECRET = "sUp3r-s3cr3t-v4lue"  # planted in secret fields; must never show up in reprs or errors


def parse(document: dict):
    return parse_objstore_config(yaml.safe_dump(document), source="object-store.yaml")


def config_error(document: dict) -> str:
    with pytest.raises(StorageConfigError) as raised:
        parse(document)
    message = str(raised.value)
    assert message.startswith("object-store.yaml: ")
    assert SECRET not in message
    return message


def s3_doc(**config) -> dict:
    return {"type": "S3", "config": {"bucket": "kubecost-etl", **config}}


# --- valid files -------------------------------------------------------------------------


def test_thanos_s3_sample_parses():
    config = parse(
        {
            "type": "s3",  # any case
            "config": {
                "bucket": "kubecost-etl",
                "endpoint": "minio.storage.svc:9000",
                "region": "eu-west-1",
                "access_key": "AKIAEXAMPLE",
                "secret_key": SECRET,
                "insecure": True,
                "signature_version2": False,
                "part_size": 8 * 1024 * 1024,
                "put_user_metadata": {"X-Amz-Storage-Class": "STANDARD_IA", "team": "finops"},
                "http_config": {"idle_conn_timeout": "1m30s", "insecure_skip_verify": True},
            },
            "prefix": "/clusters/prod/",
        }
    )

    assert config.type == "S3"
    assert config.prefix == "clusters/prod"
    s3 = config.backend
    assert isinstance(s3, S3Config)
    assert (s3.bucket, s3.region, s3.part_size, s3.insecure_skip_verify) == (
        "kubecost-etl",
        "eu-west-1",
        8 << 20,
        True,
    )
    assert s3.endpoint_url == "http://minio.storage.svc:9000"  # insecure: plain HTTP
    assert not s3.is_aws


@pytest.mark.parametrize(
    ("endpoint", "insecure", "url", "region"),
    [
        ("minio.local:9000", False, "https://minio.local:9000", "us-east-1"),
        ("minio.local:9000", True, "http://minio.local:9000", "us-east-1"),
        ("http://127.0.0.1:9000", False, "http://127.0.0.1:9000", "us-east-1"),  # scheme given: kept
        ("s3.amazonaws.com", False, None, "us-east-1"),  # AWS: boto3 picks the regional endpoint
        ("s3.eu-central-1.amazonaws.com", False, None, "eu-central-1"),
        ("", False, None, "us-east-1"),
    ],
)
def test_s3_endpoint_and_region(endpoint, insecure, url, region):
    s3 = parse(s3_doc(endpoint=endpoint, insecure=insecure)).backend

    assert (s3.endpoint_url, s3.effective_region) == (url, region)


def test_other_types_parse():
    gcs = parse({"type": "GCS", "config": {"bucket": "b", "chunk_size_bytes": 8 * 1024 * 1024}}).backend
    azure = parse(
        {
            "type": "azure",
            "config": {"storage_account": "acct", "storage_account_key": SECRET, "container": "c"},
        }
    ).backend
    filesystem = parse({"type": "Filesystem", "config": {"directory": "/backups"}}).backend

    assert isinstance(gcs, GCSConfig) and gcs.part_size == 8 * 1024 * 1024
    assert isinstance(azure, AzureConfig) and azure.account_url == "https://acct.blob.core.windows.net"
    assert filesystem.directory == "/backups"


def test_thanos_keys_we_do_not_use_are_logged_not_refused(caplog):
    with caplog.at_level(logging.WARNING):
        parse(s3_doc(trace={"enable": True}, list_objects_version="v2"))

    assert "config.trace is not used" in caplog.text
    assert "config.list_objects_version is not used" in caplog.text


# --- validation errors -------------------------------------------------------------------


def test_prefix_inside_config_is_refused_with_an_explanation():
    message = config_error(s3_doc(prefix="clusters/prod"))

    assert "config.prefix" in message
    assert "must be a top-level key" in message


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"config": {"bucket": "b"}}, "type: missing"),
        ({"type": "SWIFT", "config": {}},
         "type: 'SWIFT' is not supported (supported: S3, GCS, AZURE, FILESYSTEM)"),
        ({"type": "S3"}, "config: missing"),
        ({"type": "S3", "config": "bucket=b"}, "config: expected a mapping"),
        ({"type": "S3", "config": {"endpoint": "x"}}, "config.bucket: missing (required)"),
        ({"type": "GCS", "config": {}}, "config.bucket: missing (required)"),
        ({"type": "AZURE", "config": {"storage_account": "a"}}, "config.container: missing (required)"),
        ({"type": "AZURE", "config": {"container": "c"}}, "config.storage_account: missing (required)"),
        ({"type": "FILESYSTEM", "config": {}}, "config.directory: missing (required)"),
        ({"type": "S3", "config": {"bucket": "b"}, "bucket": "b"},
         "unknown top-level key(s) bucket (it belongs inside config: bucket)"),
        (s3_doc(secert_key=SECRET), "config.secert_key: unknown setting (did you mean secret_key?)"),
        (s3_doc(insecure="yes please"), "config.insecure: expected true or false"),
        (s3_doc(part_size=1024), "config.part_size: must be at least 5242880 bytes"),
        (s3_doc(secret_key=SECRET), "access_key and secret_key must be given together"),
        (s3_doc(http_config={"insecure_skip_verfy": True}),
         "config.http_config.insecure_skip_verfy: unknown setting"),
        (s3_doc(sse_config={"type": "SSE-C", "encryption_key": "/k"}),
         "SSE-C (customer-provided keys) is not supported"),
        (s3_doc(sse_config={"type": "SSE-KMS"}),
         "config.sse_config.kms_key_id: required when type is SSE-KMS"),
        ({"type": "GCS", "config": {"bucket": "b", "chunk_size_bytes": 1000}}, "multiple of 262144 bytes"),
        ({"type": "GCS", "config": {"bucket": "b", "service_account": "{" + SECRET}},
         "config.service_account: not valid JSON"),
        (
            {"type": "AZURE",
             "config": {"container": "c", "storage_account": "a", "storage_connection_string": SECRET}},
            "give either storage_connection_string or storage_account(+key), not both",
        ),
        ({"type": "AZURE", "config": {"container": "c", "storage_account": "a", "client_secret": SECRET}},
         "must be given together"),
    ],
)  # fmt: skip
def test_validation_errors(document, expected):
    assert expected in config_error(document)


def test_invalid_yaml_names_the_file_and_line_but_not_the_content(tmp_path):
    path = tmp_path / "object-store.yaml"
    path.write_text(f"type: S3\nconfig:\n  bucket: b\n  secret_key: {SECRET}: oops\n")

    with pytest.raises(StorageConfigError) as raised:
        load_objstore_config(path)

    assert str(raised.value).startswith(f"{path}: invalid YAML at line 4")
    assert SECRET not in "".join(traceback.format_exception(raised.value))  # not via a chained error either


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "No such file or directory"),
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
        (b"", "empty object store config"),
        (b"- just\n- a list\n", "expected a mapping"),
    ],
)
def test_unusable_files_are_named(tmp_path, content, expected):
    path = tmp_path / "object-store.yaml"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(StorageConfigError) as raised:
        load_objstore_config(path)

    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_reprs_redact_secrets():
    service_account = json.dumps({"type": "service_account", "private_key": SECRET})
    configs = [
        parse(s3_doc(access_key="AKIAEXAMPLE", secret_key=SECRET, session_token=SECRET)),
        parse({"type": "GCS", "config": {"bucket": "b", "service_account": service_account}}),
        parse(
            {
                "type": "AZURE",
                "config": {"storage_account": "a", "storage_account_key": SECRET, "container": "c"},
            }
        ),
        parse(
            {
                "type": "AZURE",
                "config": {"storage_connection_string": f"AccountKey={SECRET}", "container": "c"},
            }
        ),
        parse(
            {
                "type": "AZURE",
                "config": {
                    "storage_account": "a",
                    "container": "c",
                    "az_tenant_id": "t",
                    "client_id": "i",
                    "client_secret": SECRET,
                },
            }
        ),
    ]
    for config in configs:
        for text in (repr(config), str(config), repr(config.backend), str(config.backend)):
            assert SECRET not in text
            assert "<redacted>" in text
    assert "AKIAEXAMPLE" in repr(configs[0])  # access key ids are not secret and help debugging


# --- building stores against real servers ------------------------------------------------


def round_trip(store) -> bytes:
    store.put_bytes("probe/object", b"built from object-store.yaml")
    return store.read_bytes("probe/object")


def test_build_s3_store_for_an_s3_compatible_server(moto_s3_server, unique_bucket_name):
    moto_s3_server.client().create_bucket(Bucket=unique_bucket_name)
    config = parse(
        {
            "type": "S3",
            "config": {
                "bucket": unique_bucket_name,
                "endpoint": f"127.0.0.1:{moto_s3_server.port}",
                "insecure": True,
                "access_key": MOTO_ACCESS_KEY,
                "secret_key": MOTO_SECRET_KEY,
                "put_user_metadata": {"X-Amz-Storage-Class": "STANDARD_IA", "team": "finops"},
                "sse_config": {"type": "SSE-S3"},
            },
            "prefix": "clusters",
        }
    )

    store = build_store(config, sub_prefix="prod")

    assert isinstance(store, S3Store)
    assert store.description == f"s3://{unique_bucket_name}/clusters/prod"
    assert store.client.meta.config.request_checksum_calculation == "when_required"  # S3-compatible
    assert round_trip(store) == b"built from object-store.yaml"
    head = moto_s3_server.client().head_object(Bucket=unique_bucket_name, Key="clusters/prod/probe/object")
    assert (head["ServerSideEncryption"], head["StorageClass"], head["Metadata"]) == (
        "AES256",
        "STANDARD_IA",
        {"team": "finops"},
    )


def test_build_gcs_store_with_the_emulator(gcs_emulator_server, unique_bucket_name, monkeypatch):
    gcs_emulator_server.client().create_bucket(unique_bucket_name)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_server.url)

    store = build_store(parse({"type": "GCS", "config": {"bucket": unique_bucket_name}}))

    assert isinstance(store, GCSStore)
    assert round_trip(store) == b"built from object-store.yaml"


def test_build_gcs_store_with_an_inline_service_account(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = {
        "type": "service_account",
        "project_id": "finops-project",
        "private_key_id": "abc",
        "private_key": private_key.decode(),
        "client_email": "backup@finops-project.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }

    store = build_store(parse({"type": "GCS", "config": {"bucket": "b", "service_account": json.dumps(key)}}))

    assert store.client.project == "finops-project"
    assert store.client._credentials.service_account_email == key["client_email"]


@pytest.mark.parametrize("auth", ["connection_string", "account_key"])
def test_build_azure_store_with_azurite(azurite_server, unique_bucket_name, auth):
    BlobServiceClient.from_connection_string(azurite_server.connection_string()).create_container(
        unique_bucket_name
    )
    if auth == "connection_string":
        settings = {"storage_connection_string": azurite_server.connection_string()}
    else:  # a full account URL as endpoint: this project's extension for emulators and private endpoints
        settings = {
            "storage_account": AZURITE_ACCOUNT,
            "storage_account_key": AZURITE_KEY,
            "endpoint": azurite_server.blob_endpoint(),
        }

    store = build_store(parse({"type": "AZURE", "config": {"container": unique_bucket_name, **settings}}))

    assert isinstance(store, AzureStore)
    assert round_trip(store) == b"built from object-store.yaml"


def test_build_filesystem_store(tmp_path):
    store = build_store(parse({"type": "FILESYSTEM", "config": {"directory": str(tmp_path)}, "prefix": "p"}))

    assert isinstance(store, FilesystemStore)
    assert round_trip(store) == b"built from object-store.yaml"
    assert (tmp_path / "p" / "probe" / "object").exists()
