"""Building the store a parsed config describes (each backend's SDK imported only when it is built)."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubecost_etl.storage.base import ObjectStore, StorageConfigError
from kubecost_etl.storage.objstore_config.models import (
    AzureConfig,
    GCSConfig,
    ObjStoreConfig,
    S3Config,
)


def build_store(config: ObjStoreConfig, *, sub_prefix: str = "") -> ObjectStore:
    """The store the config describes; `sub_prefix` nests under the file's own prefix."""
    prefix = "/".join(part.strip("/") for part in (config.prefix, sub_prefix) if part.strip("/"))
    backend = config.backend
    if isinstance(backend, S3Config):
        return _build_s3(backend, prefix)
    if isinstance(backend, GCSConfig):
        return _build_gcs(backend, prefix, config.source)
    if isinstance(backend, AzureConfig):
        return _build_azure(backend, prefix)
    from kubecost_etl.storage.filesystem import FilesystemStore

    return FilesystemStore(backend.directory, prefix)


def _build_s3(config: S3Config, prefix: str) -> ObjectStore:
    from kubecost_etl.storage.s3 import S3Store, make_s3_client

    addressing_style = {"virtual-hosted": "virtual", "path": "path"}.get(
        config.bucket_lookup_type,
        "auto" if config.is_aws else "path",  # MinIO & co. want path style
    )
    verify: bool | str | None = None
    if config.insecure_skip_verify:
        verify = False
    elif config.ca_file:
        verify = config.ca_file
    client = make_s3_client(
        endpoint_url=config.endpoint_url,
        region=config.effective_region,
        # aws_sdk_auth or no keys: boto3's own chain (env, profile, IRSA, instance role)
        access_key=config.access_key or None,
        secret_key=config.secret_key or None,
        session_token=config.session_token or None,
        s3_compatible=not config.is_aws,
        addressing_style=addressing_style,
        signature_version="s3" if config.signature_version2 else None,
        verify=verify,
    )
    return S3Store(
        client, config.bucket, prefix, part_size=config.part_size, put_extra_args=_s3_put_args(config)
    )


def _s3_put_args(config: S3Config) -> dict[str, Any]:
    args: dict[str, Any] = {}
    metadata = dict(config.put_user_metadata)
    for name in list(metadata):
        if name.lower() == "x-amz-storage-class":  # Thanos' way of choosing a storage class
            args["StorageClass"] = metadata.pop(name)
    if metadata:
        args["Metadata"] = metadata
    if config.sse_type == "SSE-S3":
        args["ServerSideEncryption"] = "AES256"
    elif config.sse_type == "SSE-KMS":
        args["ServerSideEncryption"] = "aws:kms"
        args["SSEKMSKeyId"] = config.sse_kms_key_id
        if config.sse_kms_encryption_context:
            context = json.dumps(config.sse_kms_encryption_context).encode()
            args["SSEKMSEncryptionContext"] = base64.b64encode(context).decode()
    return args


def _build_gcs(config: GCSConfig, prefix: str, source: str) -> ObjectStore:
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    from kubecost_etl.storage.gcs import GCSStore

    if config.service_account:
        from google.oauth2 import service_account

        key = json.loads(config.service_account)
        try:
            credentials = service_account.Credentials.from_service_account_info(key)
        except (ValueError, KeyError):
            raise StorageConfigError(
                f"{source}: config.service_account: not a usable service account key"
            ) from None
        client = storage.Client(project=key.get("project_id"), credentials=credentials)
    else:
        try:
            # Application default credentials; anonymous when STORAGE_EMULATOR_HOST points at an emulator.
            client = storage.Client()
        except DefaultCredentialsError:
            raise StorageConfigError(
                f"{source}: GCS: no service_account in config and no application default credentials found"
            ) from None
    return GCSStore(client, config.bucket, prefix, part_size=config.part_size)


def _build_azure(config: AzureConfig, prefix: str) -> ObjectStore:
    from azure.storage.blob import BlobServiceClient

    from kubecost_etl.storage.azure import AzureStore

    options: dict[str, Any] = {"retry_total": config.max_retries} if config.max_retries else {}
    if config.storage_connection_string:
        service = BlobServiceClient.from_connection_string(config.storage_connection_string, **options)
    else:
        service = BlobServiceClient(
            account_url=config.account_url, credential=_azure_credential(config), **options
        )
    return AzureStore(service.get_container_client(config.container), prefix)


def _azure_credential(config: AzureConfig) -> Any:
    if config.storage_account_key:
        from azure.core.credentials import AzureNamedKeyCredential

        return AzureNamedKeyCredential(config.storage_account, config.storage_account_key)
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    if config.client_secret:
        return ClientSecretCredential(config.az_tenant_id, config.client_id, config.client_secret)
    # Managed / workload identity, as Thanos does without a key.
    return DefaultAzureCredential(managed_identity_client_id=config.user_assigned_id or None)
