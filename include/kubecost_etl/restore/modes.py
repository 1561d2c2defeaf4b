"""The restore modes (a light module: the DAG file reads it at parse time for the trigger form)."""

from __future__ import annotations

from enum import StrEnum


class RestoreMode(StrEnum):
    REPLACE = "replace"  # the ETL dir becomes exactly the snapshot
    FILL_MISSING = "fill-missing"  # only files absent from the pod are written


REPLACE, FILL_MISSING = RestoreMode.REPLACE, RestoreMode.FILL_MISSING
MODES = tuple(m.value for m in RestoreMode)
