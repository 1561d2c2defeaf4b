"""Opening a cluster's backup repository from its configured object store reference."""

from __future__ import annotations

from kubecost_etl.config import ClusterConfig, ConfigError, ObjectStoreRef
from kubecost_etl.snapshots import Repository
from kubecost_etl.storage import objstore_config
from kubecost_etl.storage.base import ObjectStore, StorageConfigError


def _objstore(ref: ObjectStoreRef) -> objstore_config.ObjStoreConfig:
    if ref.config_file:
        return objstore_config.load_objstore_config(ref.config_file)
    return objstore_config.parse_objstore_config(ref.inline, source="inline object_store")


def open_store(ref: ObjectStoreRef) -> ObjectStore:
    if ref.conn_id:
        from .hooks.object_store import object_store_from_connection

        return object_store_from_connection(ref.conn_id, ref.bucket, ref.prefix)
    # A prefix next to config_file nests under the file's own top-level prefix.
    return objstore_config.build_store(_objstore(ref), sub_prefix=ref.prefix if ref.config_file else "")


def check_store_ref(cluster: ClusterConfig) -> None:
    """Fail early, naming the cluster, if its store cannot be configured (no network involved)."""
    if cluster.backup is None:
        raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: missing (no object store configured)")
    ref = cluster.backup.object_store
    try:
        if ref.conn_id:
            from airflow.sdk import BaseHook
            from airflow.sdk.exceptions import AirflowNotFoundException

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
        raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: missing (no object store configured)")
    try:
        store = open_store(cluster.backup.object_store)
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: {exc}") from None
    return Repository(store, cluster.id)
