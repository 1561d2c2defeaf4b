"""Object stores for the pipelines: from an Airflow connection (the provider hooks make the SDK clients, the
domain stores wrap them) or from a Thanos objstore config; and a cluster's backup repository on top.

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

from kubecost_etl.config import ClusterConfig, ConfigError, ObjectStoreRef
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.base import ObjectStore, StorageConfigError
from kubecost_etl.storage.objstore_config.build import build_store
from kubecost_etl.storage.objstore_config.models import ObjStoreConfig
from kubecost_etl.storage.objstore_config.parse import load_objstore_config, parse_objstore_config


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


# Opening a cluster's backup repository from its configured object store reference.
def _objstore(ref: ObjectStoreRef) -> ObjStoreConfig:
    if ref.config_file:
        return load_objstore_config(ref.config_file)
    return parse_objstore_config(ref.inline, source="inline object_store")


def open_store(ref: ObjectStoreRef) -> ObjectStore:
    if ref.conn_id:
        from kubecost_etl.airflow.hooks.object_store import object_store_from_connection

        return object_store_from_connection(ref.conn_id, ref.bucket, ref.prefix)
    # A prefix next to config_file nests under the file's own top-level prefix.
    return build_store(_objstore(ref), sub_prefix=ref.prefix if ref.config_file else "")


def check_store_ref(cluster: ClusterConfig) -> None:
    """Fail early, naming the cluster, if its store cannot be configured (no network involved)."""
    if cluster.backup is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: backup.object_store: missing (no object store configured)"
        )
    ref = cluster.backup.object_store
    try:
        if ref.conn_id:
            try:
                BaseHook.get_connection(ref.conn_id)
            except AirflowNotFoundException:
                raise StorageConfigError(f"Airflow connection {ref.conn_id!r} is not defined") from None
        else:
            _objstore(ref)
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: {exc}") from None


def open_repository(cluster: ClusterConfig) -> Repository:
    if cluster.backup is None:
        raise ConfigError(
            f"cluster {cluster.id!r}: backup.object_store: missing (no object store configured)"
        )
    try:
        store = open_store(cluster.backup.object_store)
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: {exc}") from None
    return Repository(store, cluster.id)
