"""An `ObjectStore` from an Airflow connection: the provider hooks make the SDK clients, the domain stores wrap them.

Supported connection types:
- `aws`: `S3Hook(aws_conn_id).get_client_type("s3")`; an S3-compatible server goes in the
  extra as `endpoint_url` (and `{"config_kwargs": {"request_checksum_calculation": "when_required",
  "response_checksum_validation": "when_required"}}` if it rejects newer checksums).
- `google_cloud_platform`: `GCSHook(gcp_conn_id).get_conn()`; for the emulator use
  `{"is_anonymous": true, "project": ...}` and set STORAGE_EMULATOR_HOST.
- `wasb`: `WasbHook(wasb_conn_id).get_conn()`; `bucket` is the container name.
"""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from kubecost_etl.storage.base import ObjectStore, StorageConfigError


def _s3(conn_id: str, bucket: str, prefix: str) -> ObjectStore:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from kubecost_etl.storage.s3 import S3Store

    return S3Store(S3Hook(aws_conn_id=conn_id).get_client_type("s3"), bucket, prefix)


def _gcs(conn_id: str, bucket: str, prefix: str) -> ObjectStore:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    from kubecost_etl.storage.gcs import GCSStore

    return GCSStore(GCSHook(gcp_conn_id=conn_id).get_conn(), bucket, prefix)


def _azure(conn_id: str, container: str, prefix: str) -> ObjectStore:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from kubecost_etl.storage.azure import AzureStore

    service = WasbHook(wasb_conn_id=conn_id).get_conn()
    return AzureStore(service.get_container_client(container), prefix)


_BUILDERS = {"aws": _s3, "google_cloud_platform": _gcs, "wasb": _azure}


def object_store_from_connection(conn_id: str, bucket: str, prefix: str = "") -> ObjectStore:
    """The store for `bucket` (an Azure container for wasb) under `prefix`, reached through `conn_id`."""
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise StorageConfigError(
            f"Airflow connection {conn_id!r} is not defined (create it in the UI, the CLI, a secrets backend "
            f"or an AIRFLOW_CONN_{conn_id.upper()} environment variable)"
        ) from None
    builder = _BUILDERS.get(connection.conn_type or "")
    if builder is None:
        raise StorageConfigError(
            f"Airflow connection {conn_id!r} has type {connection.conn_type!r}; "
            f"object stores need one of {', '.join(sorted(_BUILDERS))}"
        )
    return builder(conn_id, bucket, prefix)
