"""Reading the backup schedule at DAG-parse time: one small local YAML key, never the network.

A schedule that cannot be used (unreadable file, invalid YAML, an invalid cron expression or preset)
must not make the backup DAG an import error: scheduled backups would stop with no failed run and no
alert. The DAG falls back to the default ``@daily`` instead, so it keeps running; each run's first
task validates the whole configuration (``load_config``, the same check as ``check-config``) and
fails at once with the error, which sends the failure alert. A manual-only fallback would hide the
mistake: no run, no alert.
"""

from __future__ import annotations

import logging
import os

import yaml

from kubecost_etl.errors import ConfigError
from kubecost_etl.schedules import CONFIG_ENV, DEFAULT_SCHEDULE, check_schedule

log = logging.getLogger(__name__)


DEFAULT_FEDERATE_SCHEDULE = "*/10 * * * *"  # the Aggregator ingests about every ten minutes


def backup_schedule() -> str | None:
    """``backup_schedule`` from the config file when it is valid; ``DEFAULT_SCHEDULE`` otherwise."""
    return _schedule("backup_schedule", DEFAULT_SCHEDULE)


def federate_schedule() -> str | None:
    """``federate_schedule`` (default every 10 minutes), read and checked the same cheap way."""
    return _schedule("federate_schedule", DEFAULT_FEDERATE_SCHEDULE)


def _schedule(key: str, default: str) -> str | None:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return default
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):  # not the exception's text: a YAML excerpt may hold a secret
        log.warning(
            "cannot read %s for the schedule; using %s (the run's first task reports the error)",
            path,
            default,
        )
        return default
    if not isinstance(raw, dict):
        return default
    try:
        return check_schedule(raw.get(key, default), key)
    except ConfigError as exc:
        log.warning(
            "%s; using %s until it is fixed (every run's first task fails with this error)", exc, default
        )
        return default


def prune_schedule() -> str | None:
    """``prune_schedule`` from the config file when it is valid; daily otherwise."""
    return _schedule("prune_schedule", DEFAULT_SCHEDULE)
