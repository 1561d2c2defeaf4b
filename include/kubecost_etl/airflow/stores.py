"""Opening a cluster's backup repository from its configured object store reference."""

from __future__ import annotations

from kubecost_etl.config import ClusterConfig, ConfigError, ObjectStoreRef
from kubecost_etl.snapshots import Repository
from kubecost_etl.storage.base import ObjectStore


def open_store(ref: ObjectStoreRef) -> ObjectStore:
    if ref.conn_id:
        from .hooks.object_store import object_store_from_connection

        return object_store_from_connection(ref.conn_id, ref.bucket, ref.prefix)
    from kubecost_etl.storage import objstore_config

    if ref.config_file:
        config = objstore_config.load_objstore_config(ref.config_file)
    else:
        config = objstore_config.parse_objstore_config(ref.inline, source="inline object_store")
    return objstore_config.build_store(config)


def open_repository(cluster: ClusterConfig) -> Repository:
    if cluster.backup is None:
        raise ConfigError(f"cluster {cluster.id!r}: backup: missing (no object store configured)")
    return Repository(open_store(cluster.backup.object_store), cluster.id)
