"""How far back Prometheus holds metrics, and whether a repair window lies inside that.

Repairing a day Prometheus no longer fully holds rebuilds it from missing metrics and overwrites a
good ETL file with an empty or partial one (Kubecost issue #1920). Kubecost rebuilds whole days,
so the first day of the window must start at or after Prometheus' cutoff (now minus retention):
the oldest repairable time is that cutoff rounded up to the next midnight (UTC).

Sources, in order: ``repair.prometheus_retention`` in the configuration (overrides), then
Prometheus' ``/api/v1/status/runtimeinfo`` (``storageRetention``: ``15d``, ``15d or 10GiB`` or
``10GiB``), then ``/api/v1/status/flags`` (``storage.tsdb.retention.time`` and ``.size``). The time
part bounds the window; a size limit is reported (it can make Prometheus hold less than the time
says, which the coverage check in ``prometheus_coverage`` finds). A size-only retention sets no
time bound: only the data Prometheus holds decides then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubecost_etl.errors import Refusal
from kubecost_etl.etl.windows import DAY, RepairWindow, ceil_to, iso
from kubecost_etl.repair.transport import TransportError

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS = (365 * DAY, 7 * DAY, DAY, 3600, 60, 1, 0.001)
_SIZE = re.compile(r"^\d+(\.\d+)?([KMGTPE]i?)?B$")  # Prometheus' byte sizes: 512MB, 10GiB, 1TB
_PROMETHEUS_DEFAULT = "15d"  # what Prometheus uses when neither time nor size retention is set


class RetentionUnknown(Refusal, RuntimeError):
    """Prometheus' retention could not be found: the repair is refused (not retried; the README says so)."""


class OutsideRetention(Refusal, ValueError):
    """The window starts before the oldest time Prometheus can rebuild."""


@dataclass(frozen=True)
class Retention:
    seconds: int | None  # None: a size limit only, no time bound
    text: str
    source: str
    size: str | None = None  # e.g. "10GiB", reported

    def oldest_repairable(self, now: int) -> int | None:
        return None if self.seconds is None else ceil_to(now - self.seconds, DAY)

    def describe(self) -> str:
        if self.seconds is None:
            return f"a size limit of {self.size} and no time limit"
        return self.text if self.size is None or self.size in self.text else f"{self.text} or {self.size}"

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "text": self.text, "source": self.source, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict) -> Retention:
        return cls(data["seconds"], data["text"], data["source"], data.get("size"))


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration (``15d``, ``97h``, ``4d1h``, ``2w``); sub-seconds are dropped."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration such as 15d, 97h or 4d1h")
    return int(sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n))


def parse_retention(text: str) -> tuple[int | None, str | None]:
    """``(seconds, size)`` of a retention as Prometheus reports it: ``15d``, ``15d or 10GiB``, ``10GiB``."""
    seconds, size = None, None
    parts = [part.strip() for part in text.split(" or ")] if isinstance(text, str) else []
    if not parts or len(parts) > 2:
        raise ValueError(f"{text!r} is not a retention such as 15d, 10GiB or '15d or 10GiB'")
    for part in parts:
        if _SIZE.match(part) and size is None:
            size = part
        elif _DURATION.match(part) and any(_DURATION.match(part).groups()) and seconds is None:
            seconds = parse_duration(part) or None  # "0s": no time limit
        else:
            raise ValueError(
                f"{text!r} is not a retention such as 15d, 10GiB or '15d or 10GiB' (a Prometheus "
                "duration, a size in bytes, or both joined by ' or ')"
            )
    if seconds is None and size is None:
        raise ValueError(f"{text!r} sets neither a time nor a size limit")
    return seconds, size


def configured_retention(text: str) -> Retention:
    seconds, size = parse_retention(text)
    return Retention(seconds, text, "repair.prometheus_retention in the configuration", size)


def ask_prometheus(http) -> Retention:
    """The retention a Prometheus reports (``http``: a transport to its API root)."""
    where = http.description
    problems = []
    for path, read in (
        ("/api/v1/status/runtimeinfo", _from_runtimeinfo),
        ("/api/v1/status/flags", _from_flags),
    ):
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
            seconds, size = parse_retention(found)
            return Retention(seconds, found, f"Prometheus {path} at {where}", size)
        problems.append(f"{path}: no retention reported")
    raise RetentionUnknown(
        f"cannot tell how long Prometheus keeps metrics ({'; '.join(problems)}). Set repair.prometheus_url "
        "to your Prometheus (or repair.prometheus_service to its service), or set "
        "repair.prometheus_retention (e.g. 15d) for this cluster"
    )


def _from_runtimeinfo(data: dict) -> str | None:
    text = data.get("storageRetention")
    if not isinstance(text, str):
        return None
    try:
        parse_retention(text)
    except ValueError:
        return None
    return text


def _from_flags(data: dict) -> str | None:
    time_text = None
    for flag in ("storage.tsdb.retention.time", "storage.tsdb.retention"):
        value = data.get(flag)
        if isinstance(value, str) and value not in ("", "0s"):
            time_text = value
            break
    size = data.get("storage.tsdb.retention.size", "0B")
    size = None if size in ("0B", "0", "", None) else size
    if time_text is None and size is None:
        return _PROMETHEUS_DEFAULT
    return " or ".join(part for part in (time_text, size) if part)


def check_window(window: RepairWindow, retention: Retention, now: int) -> None:
    """Refuse a window whose first (whole) day starts before the oldest repairable time."""
    oldest = retention.oldest_repairable(now)
    if oldest is not None and window.first_day < oldest:
        raise OutsideRetention(
            f"window {window.text!r} starts on {iso(window.first_day)[:10]}, but Prometheus keeps "
            f"{retention.text} of metrics ({retention.source}): the oldest repairable time is "
            f"{iso(oldest)}. Repairing earlier days would overwrite their ETL files with empty data "
            "(Kubecost issue #1920); restore them from a backup instead"
        )
