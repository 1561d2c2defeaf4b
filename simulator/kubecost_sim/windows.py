"""Kubecost's ``window=`` query syntax, as the simulated cost-model understands it.

This is the simulator's own reading of OpenCost's ``parseWindow`` (Kubecost's engine is closed
source). The product has a separate preflight parser on purpose, so a test can catch the two
disagreeing. Accepted forms, all in UTC:

- keywords ``today``, ``yesterday`` (whole days), ``week``/``month`` (from Sunday / the 1st up to
  now), ``lastweek``/``lastmonth`` (the whole previous week / month);
- durations ``<n>(m|h|d|w)``, aligned to the unit and ending at the end of the current unit, so
  ``7d`` is today plus the six days before; weeks end at the end of today;
- ``<n><u> offset <m><u>``: ends ``m`` units before now and is NOT aligned (as in OpenCost);
- unix second pairs ``S,E``, ``S|E`` or ``S-E``;
- RFC3339 pairs ``YYYY-MM-DDTHH:MM:SSZ,YYYY-MM-DDTHH:MM:SSZ`` (``Z`` only, no fractions/offsets).

Deliberate differences from OpenCost, where OpenCost is lax in ways Kubecost need not share:
the RFC3339 pattern is anchored (OpenCost's matches anywhere in the text), impossible dates such
as month 13 are refused (OpenCost silently turns them into year 1), a week offset is one week
(OpenCost multiplies it by 24), and a window that ends before it starts is refused.
Times are whole unix seconds; the sub-second part of ``now`` is dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 7 * 86400
_UNIT_SECONDS = {"m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_DURATION_WITH_OFFSET = re.compile(r"^(\d+)([mhdw]) offset (\d+)([mhdw])$")
_UNIX_PAIR = re.compile(r"^(\d+)[,|-](\d+)$")
_RFC3339_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
_RFC3339_PAIR = re.compile(rf"^({_RFC3339_UTC}),({_RFC3339_UTC})$")

# Prometheus-style durations ("15d", "97h", "1h30m"); units must come largest first.
_PROMETHEUS_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_PROMETHEUS_UNITS = (365 * DAY, WEEK, DAY, HOUR, MINUTE, 1)


class WindowError(ValueError):
    """A ``window`` value the cost-model refuses; the text reads like Kubecost's."""


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus-style duration such as ``15d``, ``97h`` or ``1h30m``."""
    match = _PROMETHEUS_DURATION.match(text)
    if not text or not match:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(
        int(count) * unit for count, unit in zip(match.groups(), _PROMETHEUS_UNITS, strict=True) if count
    )


def parse_window(text: str, now: float) -> tuple[int, int]:
    """``(start, end)`` in unix seconds for a window string, relative to ``now``."""
    start, end = _parse(text, int(now))
    if end < start:
        raise WindowError(f"illegal window: {text} (end before start)")
    return start, end


def _parse(text: str, now: int) -> tuple[int, int]:
    today = now - now % DAY
    keyword = _keyword_window(text, now, today)
    if keyword is not None:
        return keyword

    if match := _DURATION.match(text):
        count, unit = int(match[1]), _UNIT_SECONDS[match[2]]
        # A week is counted in whole days ending tonight, other units end with the current unit.
        end = today + DAY if unit == WEEK else now - now % unit + unit
        return end - count * unit, end

    if match := _DURATION_WITH_OFFSET.match(text):
        end = now - int(match[3]) * _UNIT_SECONDS[match[4]]
        return end - int(match[1]) * _UNIT_SECONDS[match[2]], end

    if match := _UNIX_PAIR.match(text):
        return int(match[1]), int(match[2])

    if match := _RFC3339_PAIR.match(text):
        try:
            return _rfc3339_seconds(match[1]), _rfc3339_seconds(match[2])
        except ValueError as error:
            raise WindowError(f"illegal window: {text} ({error})") from None

    raise WindowError(f"illegal window: {text}")


def _keyword_window(text: str, now: int, today: int) -> tuple[int, int] | None:
    # Weeks start on Sunday, as in Go's time.Weekday.
    this_sunday = today - ((datetime.fromtimestamp(today, UTC).weekday() + 1) % 7) * DAY
    this_month = datetime.fromtimestamp(today, UTC).replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    windows = {
        "today": (today, today + DAY),
        "yesterday": (today - DAY, today),
        "week": (this_sunday, now),
        "lastweek": (this_sunday - WEEK, this_sunday),
        "month": (int(this_month.timestamp()), now),
        "lastmonth": (int(last_month.timestamp()), int(this_month.timestamp())),
    }
    return windows.get(text)


def _rfc3339_seconds(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
