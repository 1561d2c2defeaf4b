"""A cluster's retention policy: the ``retention:`` mapping of a cluster entry or of ``defaults``.

```yaml
defaults:
  retention:                    # restic's forget rules; a snapshot is kept when any rule keeps it
    keep_last: 7                # the 7 newest verified snapshots
    keep_hourly: 24             # the newest snapshot of each of the last 24 hours that have one
    keep_daily: 14
    keep_weekly: 8
    keep_monthly: 12
    keep_within: 30d            # every snapshot made within 30 days of the newest verified one
    gc_safety_margin: 24h       # objects and unverified snapshots younger than this are never deleted
    allow_unsafe_margin: false  # a margin under 1h is refused unless this is true (tests)
```

A cluster's keys win over the defaults' one by one. Counts are whole numbers >= 0 (0 is the same
as leaving the rule out); durations use the Prometheus syntax (``30d``, ``36h``, ``2w``, ``1y``).
A policy with no rule that keeps anything is refused: it is almost certainly a mistake, and the
newest verified snapshot (always kept) is no retention policy. A cluster without ``retention`` is
not pruned at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import Any

from kubecost_etl.errors import ConfigError
from kubecost_etl.repair.retention import parse_duration

COUNT_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
MIN_SAFE_MARGIN = timedelta(hours=1)
DEFAULT_MARGIN = "24h"


@dataclass(frozen=True)
class RetentionSettings:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_within: str | None = None
    gc_safety_margin: str = DEFAULT_MARGIN
    allow_unsafe_margin: bool = False

    @property
    def within(self) -> timedelta | None:
        return timedelta(seconds=parse_duration(self.keep_within)) if self.keep_within else None

    @property
    def margin(self) -> timedelta:
        return timedelta(seconds=parse_duration(self.gc_safety_margin))

    def keeps_anything(self) -> bool:
        return any(getattr(self, rule) > 0 for rule in COUNT_RULES) or bool(self.within)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RetentionSettings:
        return cls(**data)


def parse_retention_settings(raw: Any, where: str) -> RetentionSettings | None:
    """Validate a cluster's merged ``retention:`` mapping; None when the cluster has none."""
    if raw is None:
        return None
    where = f"{where}: retention"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    known = {f.name for f in fields(RetentionSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for rule in COUNT_RULES:
        if raw.get(rule) is not None:
            value = raw[rule]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}.{rule}: expected a whole number >= 0, got {value!r}")
            values[rule] = value
    for key in ("keep_within", "gc_safety_margin"):
        if raw.get(key) is not None:
            values[key] = _duration(raw[key], f"{where}.{key}")
    if "allow_unsafe_margin" in raw:
        if not isinstance(raw["allow_unsafe_margin"], bool):
            raise ConfigError(f"{where}.allow_unsafe_margin: expected true or false")
        values["allow_unsafe_margin"] = raw["allow_unsafe_margin"]
    settings = RetentionSettings(**values)
    if settings.margin < MIN_SAFE_MARGIN and not settings.allow_unsafe_margin:
        raise ConfigError(
            f"{where}.gc_safety_margin: {settings.gc_safety_margin} is under 1h: a backup still uploading "
            "could lose objects; set allow_unsafe_margin: true only for tests"
        )
    if not settings.keeps_anything():
        raise ConfigError(
            f"{where}: the policy keeps nothing (give keep_last, keep_hourly, keep_daily, keep_weekly, "
            "keep_monthly or keep_within a value above zero)"
        )
    return settings


def _duration(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a duration such as 30d or 24h, got {value!r}")
    try:
        parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value.strip()
