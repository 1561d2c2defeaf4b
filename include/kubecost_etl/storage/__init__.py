"""Object stores for ETL backups (S3, GCS, Azure Blob, local directory): pure domain code, no Airflow.

Backends are imported from their own modules (`kubecost_etl.storage.s3`...) so that using one
cloud never imports the SDKs of the others; `objstore_config.build.build_store` picks one from an
`object-store.yaml`.
"""

from kubecost_etl.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageConfigError,
    StorageError,
)

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "StorageConfigError", "StorageError"]
