"""The restore modes and sources (a light module: the DAG file reads it at parse time for the
trigger form).
"""

from __future__ import annotations

from enum import StrEnum


class RestoreMode(StrEnum):
    REPLACE = "replace"  # the ETL dir becomes exactly the snapshot
    FILL_MISSING = "fill-missing"  # only files absent from the pod are written


REPLACE, FILL_MISSING = RestoreMode.REPLACE, RestoreMode.FILL_MISSING
MODES = tuple(m.value for m in RestoreMode)


class RestoreSource(StrEnum):
    SNAPSHOT = "snapshot"  # a verified snapshot of the backup repository (by id, or latest)
    FEDERATED = (
        "federated"  # the cluster's federated mirror: [<prefix>/]federated/<cluster id>/etl/bingen/...
    )
    DURABLE = (
        "durable"  # the durable-backup layout of the cluster's federated store: [<prefix>/]etl/bingen/...
    )


SNAPSHOT_SOURCE = RestoreSource.SNAPSHOT
SOURCES = tuple(s.value for s in RestoreSource)
MIRROR_SOURCES = (RestoreSource.FEDERATED.value, RestoreSource.DURABLE.value)
