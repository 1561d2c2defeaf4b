"""Text of the cost-model container's log lines, in the formats Kubecost prints.

A line is ``<time> <LVL> <message>`` with the time like ``2023-05-24T19:41:34.57Z`` (RFC3339,
trailing zeros of the fraction dropped). Messages embed Go renderings: ``time.Time.String()``
(``2023-01-01 00:00:00 +0000 UTC``), Kubecost's window text (``[2023-01-01T00:00:00+0000,
2023-01-02T00:00:00+0000)``) and ``time.Duration.String()`` (``68.417µs``, ``26ms``).
Which messages each repair step logs is decided in ``repair.py``.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

_ID_ALPHABET = string.ascii_letters


def log_line(now: float, level: str, message: str) -> str:
    return f"{rfc3339_nano(now)} {level} {message}"


def rfc3339_nano(unix_seconds: float) -> str:
    """Go's ``time.RFC3339Nano`` in UTC, as logs and JSON print times: ``2023-05-24T19:41:34.57Z``."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def go_time(unix_seconds: int) -> str:
    """Go's ``time.Time.String()`` of a UTC time."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def window_text(start: int, end: int) -> str:
    """Kubecost's rendering of a half-open window."""
    return f"[{_window_time(start)}, {_window_time(end)})"


def _window_time(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for durations under a minute (all a repair step needs)."""
    nanoseconds = round(seconds * 1e9)
    if nanoseconds < 1_000:
        return f"{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        unit, size = "µs", 1_000
    elif nanoseconds < 1_000_000_000:
        unit, size = "ms", 1_000_000
    else:
        unit, size = "s", 1_000_000_000
    return f"{nanoseconds / size:.9f}".rstrip("0").rstrip(".") + unit


def run_id(rng: random.Random) -> str:
    """The five-letter tag Kubecost puts in brackets to tell concurrent runs apart."""
    return "".join(rng.choices(_ID_ALPHABET, k=5))
