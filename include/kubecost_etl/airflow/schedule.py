"""Reading the backup schedule at DAG-parse time: one small local YAML key, never the network."""

from __future__ import annotations

import logging
import os

import yaml

from kubecost_etl.config import CONFIG_ENV

DEFAULT_SCHEDULE = "@daily"
log = logging.getLogger(__name__)


def backup_schedule() -> str | None:
    """``backup_schedule`` from the config file; the default when it cannot be read.

    A broken file must not make the DAG vanish from the UI: the run's first task reports the
    configuration error clearly instead.
    """
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return DEFAULT_SCHEDULE
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
        return raw.get("backup_schedule", DEFAULT_SCHEDULE) if isinstance(raw, dict) else DEFAULT_SCHEDULE
    except (OSError, yaml.YAMLError) as exc:
        log.warning("cannot read %s for the schedule (%s); using %s", path, exc, DEFAULT_SCHEDULE)
        return DEFAULT_SCHEDULE
