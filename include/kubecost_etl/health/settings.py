"""The ``health:`` section of the project configuration (every key optional).

```yaml
health:
  schedule: "@hourly"        # when kubecost_etl_health runs: a cron expression, a preset or null
  max_backup_age: 26h        # no verified snapshot newer than this -> alert ("90m", "26h", "2d")
  auto_fill: false           # true: a gap in the pod triggers a fill-missing restore of the latest snapshot
  restart: false             # restart Kubecost after such a fill (off: the files are read on its next load)
```
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from kubecost_etl.errors import ConfigError

DEFAULT_SCHEDULE = "@hourly"
_KEYS = {"schedule", "max_backup_age", "auto_fill", "restart"}
_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthSettings:
    schedule: str | None = DEFAULT_SCHEDULE
    max_backup_age: timedelta = timedelta(hours=26)
    auto_fill: bool = False
    restart: bool = False


def parse_duration(value: Any, where: str) -> timedelta:
    """``90m``, ``26h`` or ``2d`` (a bare number is read as hours)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(hours=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or int(match[1]) == 0:
        raise ConfigError(f"{where}: expected a positive duration such as 90m, 26h or 2d, got {value!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def parse_health_settings(raw: Any, where: str) -> HealthSettings:
    if raw is None:
        return HealthSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: health: expected a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: health: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    settings: dict[str, Any] = {}
    if "schedule" in raw:
        if raw["schedule"] is not None and (
            not isinstance(raw["schedule"], str) or not raw["schedule"].strip()
        ):
            raise ConfigError(f"{where}: health.schedule: expected a cron expression, preset or null")
        settings["schedule"] = raw["schedule"]
    if "max_backup_age" in raw:
        settings["max_backup_age"] = parse_duration(raw["max_backup_age"], f"{where}: health.max_backup_age")
    for key in ("auto_fill", "restart"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}: health.{key}: expected true or false")
            settings[key] = raw[key]
    return HealthSettings(**settings)


def health_schedule(path: str | None = None) -> str | None:
    """``health.schedule`` read at DAG-parse time from the local file (never the network).

    A broken file keeps the default so the DAG stays visible; its first task then alerts about the file.
    """
    path = path or os.environ.get("KUBECOST_ETL_CONFIG")
    if not path:
        return DEFAULT_SCHEDULE
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
        section = raw.get("health") if isinstance(raw, dict) else None
        return parse_health_settings(section, path).schedule
    except (OSError, yaml.YAMLError, ConfigError) as exc:
        log.warning("cannot read health.schedule from %s (%s); using %s", path, exc, DEFAULT_SCHEDULE)
        return DEFAULT_SCHEDULE
