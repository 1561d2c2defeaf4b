"""Where the configuration lives and which schedules it may name: what DAG files read at parse time.

Kept apart from ``kubecost_etl.config`` (which imports every pipeline's settings) so that a DAG file
reading its schedule imports nothing heavier than this module and croniter, which Airflow loads anyway.
"""

from __future__ import annotations

from typing import Any

from kubecost_etl.errors import ConfigError

CONFIG_ENV = "KUBECOST_ETL_CONFIG"
DEFAULT_SCHEDULE = "@daily"
# Airflow's presets (airflow.sdk CRON_PRESETS) and its two special schedules.
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)


def check_schedule(value: Any, where: str = "backup_schedule") -> str | None:
    """A cron expression (five fields) or an Airflow preset, or None (manual runs only); else a
    ConfigError.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: expected a cron expression (five fields), a preset such as @daily, or null"
        )
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ConfigError(
                f"{where}: {value!r} is not an Airflow preset; use one of {', '.join(SCHEDULE_PRESETS)}"
            )
        return value
    fields_given = value.split()
    if len(fields_given) != 5:
        raise ConfigError(
            f"{where}: {value!r} has {len(fields_given)} field(s); a cron expression has five "
            "(minute hour day-of-month month day-of-week)"
        )
    problem = _cron_problem(value)
    if problem:
        raise ConfigError(f"{where}: {value!r} is not a valid cron expression: {problem}")
    return value


def _cron_problem(expression: str) -> str | None:
    """Why croniter (what Airflow's cron timetables use) rejects ``expression``; None when it is valid."""
    try:
        from croniter import croniter
    except ImportError:  # croniter comes with Airflow; without it, ask Airflow's own timetable
        from airflow.timetables.trigger import CronTriggerTimetable

        try:
            CronTriggerTimetable(expression, timezone="UTC").validate()
        except Exception as exc:  # noqa: BLE001 (AirflowTimetableInvalid and the parser's errors)
            return str(exc) or type(exc).__name__
        return None
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:  # CroniterBadCronError is a ValueError
        return str(exc) or type(exc).__name__
    return None
