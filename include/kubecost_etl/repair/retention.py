"""How far back Prometheus holds metrics, and whether a repair window lies inside that.

Repairing a day Prometheus no longer fully holds rebuilds it from missing metrics and overwrites a
good ETL file with an empty or partial one (Kubecost issue #1920). Kubecost rebuilds whole days,
so the first day of the window must start at or after Prometheus' cutoff (now minus retention):
the oldest repairable time is that cutoff rounded up to the next midnight (UTC).

Sources, in order: ``repair.prometheus_retention`` in the configuration (overrides), then
Prometheus' ``/api/v1/status/runtimeinfo`` (``storageRetention``, e.g. ``15d`` or ``15d or 10GiB``),
then ``/api/v1/status/flags`` (``storage.tsdb.retention.time``). Size-only retention says nothing
about time, so it counts as unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubecost_etl.errors import KubecostEtlError, Refusal
from kubecost_etl.etl.windows import DAY, RepairWindow, ceil_to, iso
from kubecost_etl.repair.transport import TransportError

_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * DAY, 7 * DAY, DAY, 3600, 60, 1, 0.001)
_PROMETHEUS_DEFAULT = "15d"  # what Prometheus uses when neither time nor size retention is set


class RetentionUnknown(KubecostEtlError, RuntimeError):
    """Prometheus' retention could not be found: the repair is refused."""


class OutsideRetention(Refusal, ValueError):
    """The window starts before the oldest time Prometheus can rebuild."""


@dataclass(frozen=True)
class Retention:
    seconds: int
    text: str
    source: str

    def oldest_repairable(self, now: int) -> int:
        return ceil_to(now - self.seconds, DAY)

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "text": self.text, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> Retention:
        return cls(data["seconds"], data["text"], data["source"])


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration (``15d``, ``97h``, ``4d1h``, ``2w``); sub-seconds are dropped."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration such as 15d, 97h or 4d1h")
    return int(sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n))


def configured_retention(text: str) -> Retention:
    return Retention(parse_duration(text), text, "repair.prometheus_retention in the configuration")


def ask_prometheus(http) -> Retention:
    """The retention a Prometheus reports (``http``: a transport to its API root)."""
    where = http.description
    problems = []
    for path, read in (("/api/v1/status/runtimeinfo", _from_runtimeinfo), ("/api/v1/status/flags", _from_flags)):
        try:
            answer = http.get(path)
        except TransportError as exc:
            problems.append(str(exc))
            continue
        if answer.status != 200:
            problems.append(f"{path}: HTTP {answer.status}: {answer.excerpt(150)}")
            continue
        try:
            found = read(answer.json().get("data") or {})
        except (ValueError, AttributeError) as exc:
            problems.append(f"{path}: unreadable answer ({exc})")
            continue
        if found:
            return Retention(parse_duration(found), found, f"Prometheus {path} at {where}")
        problems.append(f"{path}: no time-based retention reported")
    raise RetentionUnknown(
        f"cannot tell how long Prometheus keeps metrics ({'; '.join(problems)}). Set repair.prometheus_url "
        "to your Prometheus (or repair.prometheus_service to its service), or set repair.prometheus_retention "
        "(e.g. 15d) for this cluster"
    )


def _from_runtimeinfo(data: dict) -> str | None:
    text = data.get("storageRetention")
    if not isinstance(text, str):
        return None
    for part in text.split(" or "):  # "15d or 10GiB": the time part
        if _DURATION.match(part.strip()) and part.strip() != "0s":
            return part.strip()
    return None


def _from_flags(data: dict) -> str | None:
    for flag in ("storage.tsdb.retention.time", "storage.tsdb.retention"):
        value = data.get(flag)
        if isinstance(value, str) and value not in ("", "0s"):
            return value
    size = data.get("storage.tsdb.retention.size", "0B")
    return _PROMETHEUS_DEFAULT if size in ("0B", "0", "", None) else None


def check_window(window: RepairWindow, retention: Retention, now: int) -> None:
    """Refuse a window whose first (whole) day starts before the oldest repairable time."""
    oldest = retention.oldest_repairable(now)
    if window.first_day < oldest:
        raise OutsideRetention(
            f"window {window.text!r} starts on {iso(window.first_day)[:10]}, but Prometheus keeps {retention.text} "
            f"of metrics ({retention.source}): the oldest repairable time is {iso(oldest)}. Repairing earlier days "
            "would overwrite their ETL files with empty data (Kubecost issue #1920); restore them from a backup "
            "instead"
        )
