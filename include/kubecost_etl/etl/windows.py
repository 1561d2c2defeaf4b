"""Kubecost's ``window=`` syntax, resolved to absolute UTC bounds before a repair (preflight).

This is the product's own reading of OpenCost's ``parseWindow`` (Kubecost's engine is closed
source); it is deliberately not shared with the simulator, so tests catch the two disagreeing.
Accepted forms, all in UTC:

- keywords ``today``, ``yesterday`` (whole days), ``week``/``month`` (from Sunday / the 1st up to
  now), ``lastweek``/``lastmonth`` (the whole previous week / month);
- durations ``<n>(m|h|d|w)`` aligned to the unit and ending with the unit in progress (``7d`` is
  today and the six days before; ``2w`` ends tonight);
- ``<n><u> offset <m><u>``: ends ``m`` units before now, not aligned (as OpenCost does);
- unix second pairs ``S,E``, ``S|E`` or ``S-E``;
- RFC3339 pairs ``YYYY-MM-DDTHH:MM:SSZ,YYYY-MM-DDTHH:MM:SSZ`` (``Z`` only: no fractions, no offsets).

Rules a repair adds on top (Kubecost itself accepts these windows and then does the wrong thing):

- not empty, and the end after the start;
- not in the future: the start lies before now, and the end reaches at most the end of the period
  in progress at the end's own granularity (the current day for a midnight end, the current hour
  for a whole-hour end, the current minute for a whole-minute end, else now). So ``today``, ``7d``
  and ``3h`` pass, a window ending tomorrow night does not;
- at most ``max_days`` days long, counted in the whole days Kubecost rebuilds.

Every error is a ``WindowError`` (a ``Refusal``: not retried). The text is at most ``MAX_TEXT``
ASCII characters (``"１d"`` with a full-width digit is refused), and no duration, offset or bound
may reach more than ``MAX_SPAN_DAYS`` from 1970 or now: both are checked before anything is
computed, so ``"200000000d"`` or ``"99999999999w offset 1d"`` is a quick refusal, not a huge list.

Kubecost repairs whole days: a window that starts or ends inside a day rebuilds all of that day.
The request always carries the resolved bounds as an RFC3339 pair, so every step of a repair
covers the same days even when the run crosses midnight (``7d`` would move).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kubecost_etl.errors import Refusal

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 7 * 86400
MAX_TEXT = 100  # characters; the longest valid form (an RFC3339 pair) has 41
MAX_SPAN_DAYS = 100 * 366  # no duration or offset reaches further back than this
_UNITS = {"m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}
_KEYWORDS = ("today", "yesterday", "week", "month", "lastweek", "lastmonth")

_DURATION = re.compile(r"^(\d+)([mhdw])$", re.ASCII)
_DURATION_OFFSET = re.compile(r"^(\d+)([mhdw]) offset (\d+)([mhdw])$", re.ASCII)
_UNIX_PAIR = re.compile(r"^(\d+)[,|-](\d+)$", re.ASCII)
_RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", re.ASCII)
# Looser shapes, only to say precisely what is wrong with a near miss.
_RFC3339_FRACTION = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:?\d\d)?$", re.IGNORECASE | re.ASCII
)
_RFC3339_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:?\d\d)$", re.ASCII)
_RFC3339_NO_ZONE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d)?$", re.IGNORECASE | re.ASCII)
_DATE_ONLY = re.compile(r"^\d{4}-\d\d-\d\d$", re.ASCII)
_SHAPES = (
    "today, yesterday, week, month, lastweek, lastmonth; <n>m|h|d|w such as 7d; "
    "'<n><u> offset <m><u>'; unix seconds S,E; or YYYY-MM-DDTHH:MM:SSZ,YYYY-MM-DDTHH:MM:SSZ"
)
_MILLISECONDS_FROM = 100_000_000_000  # unix seconds this large are the year 5138: milliseconds by mistake


class WindowError(Refusal, ValueError):
    """A window a repair must not use; the message names the problem."""


@dataclass(frozen=True)
class RepairWindow:
    """A window resolved to unix seconds (UTC), half open: ``[start, end)``."""

    text: str
    start: int
    end: int

    @property
    def query(self) -> str:
        """The ``window=`` value sent to Kubecost: the resolved bounds as an RFC3339 pair."""
        return f"{iso(self.start)},{iso(self.end)}"

    @property
    def first_day(self) -> int:
        return self.start - self.start % DAY

    @property
    def day_count(self) -> int:
        """How many whole days Kubecost rebuilds, counted without listing them."""
        return max(0, (ceil_to(self.end, DAY) - self.first_day) // DAY)

    def days(self) -> list[int]:
        """Starts of the whole days Kubecost rebuilds for this window."""
        if self.day_count > MAX_SPAN_DAYS:
            raise WindowError(f"window {self.text!r} covers {self.day_count} days, more than {MAX_SPAN_DAYS}")
        return list(range(self.first_day, ceil_to(self.end, DAY), DAY))

    def describe(self) -> str:
        last = ceil_to(self.end, DAY) - DAY
        return (
            f"{self.text!r} = [{iso(self.start)}, {iso(self.end)}); Kubecost rebuilds {self.day_count} whole "
            f"day(s) {iso(self.first_day)[:10]} .. {iso(last)[:10]}"
        )

    def as_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end, "query": self.query}

    @classmethod
    def from_dict(cls, data: dict) -> RepairWindow:
        return cls(data["text"], data["start"], data["end"])


def iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ceil_to(seconds: int, unit: int) -> int:
    return -(-seconds // unit) * unit


def resolve_window(text: str, now: float, max_days: int) -> RepairWindow:
    """Parse ``text`` as Kubecost would and apply a repair's rules; raise ``WindowError`` naming
    the problem.
    """
    if isinstance(text, str) and len(text) > MAX_TEXT:
        _check_text(text)  # refused by its length, before even a copy is made
    if not isinstance(text, str) or not text.strip():
        raise WindowError(f"the window is empty: give one of {_SHAPES}")
    _check_text(text)
    text = text.strip()  # only the resolved bounds are sent, so outer spaces cannot reach Kubecost
    now_s = int(now)
    start, end = parse_window(text, now_s)
    if end < start:
        raise WindowError(f"window {text!r}: the end {iso(end)} is before the start {iso(start)}")
    if end == start:
        raise WindowError(f"window {text!r} is empty: it starts and ends at {iso(start)}")
    if start >= now_s:
        raise WindowError(f"window {text!r} is in the future: it starts at {iso(start)}, now is {iso(now_s)}")
    latest_end = _latest_end(end, now_s)
    if end > latest_end:
        raise WindowError(
            f"window {text!r} reaches into the future: it ends at {iso(end)}, after {iso(latest_end)} "
            f"(the end of the period in progress; now is {iso(now_s)})"
        )
    window = RepairWindow(text, start, end)
    day_count = window.day_count
    if day_count > max_days:
        raise WindowError(
            f"window {text!r} is too long: it covers {day_count} days, more than the maximum of {max_days} "
            "(repair.max_window_days); repair it in several runs"
        )
    return window


def _check_text(text: str) -> None:
    if len(text) > MAX_TEXT:  # before anything else looks at it (and without quoting it)
        raise WindowError(
            f"the window is {len(text)} characters long; a window is at most {MAX_TEXT}: "
            f"give one of {_SHAPES}"
        )
    if not text.isascii():
        raise WindowError(
            f"window {text!r}: only ASCII letters, digits and punctuation are accepted "
            "(a full-width or other non-ASCII digit is not a digit to Kubecost)"
        )


def _latest_end(end: int, now: int) -> int:
    """The end of the period in progress, at the granularity the end is aligned to."""
    for unit in (DAY, HOUR, MINUTE):
        if end % unit == 0:
            return now - now % unit + unit
    return now


def parse_window(text: str, now: int) -> tuple[int, int]:
    """``(start, end)`` for a window string, relative to ``now``; the syntax only, as Kubecost reads it."""
    _check_text(text)
    today = now - now % DAY
    keyword = _keyword_window(text, now, today)
    if keyword is not None:
        return keyword
    if match := _DURATION.match(text):
        count, unit = _count(text, match[1], match[2]), _UNITS[match[2]]
        # "The past n units" is the unit in progress plus the n-1 before it; weeks end tonight.
        end = today + DAY if unit == WEEK else now - now % unit + unit
        return end - count * unit, end
    if match := _DURATION_OFFSET.match(text):
        end = now - _count(text, match[3], match[4]) * _UNITS[match[4]]
        return end - _count(text, match[1], match[2]) * _UNITS[match[2]], end
    if match := _UNIX_PAIR.match(text):
        start, end = int(match[1]), int(match[2])
        for value in (start, end):
            if value >= _MILLISECONDS_FROM:
                raise WindowError(
                    f"window {text!r}: {value} looks like milliseconds; Kubecost takes unix seconds"
                )
        return start, end
    if "," in text and ("T" in text or re.search(r"\d{4}-\d\d-\d\d", text)):
        return _rfc3339_pair(text)
    raise WindowError(f"illegal window {text!r}: {_hint(text)}expected one of {_SHAPES}")


def _count(text: str, digits: str, unit: str) -> int:
    """``digits`` as a count of ``unit``, refused when it reaches further than ``MAX_SPAN_DAYS``."""
    count = int(digits)  # at most MAX_TEXT digits: cheap
    if count * _UNITS[unit] > MAX_SPAN_DAYS * DAY:
        raise WindowError(
            f"window {text!r}: {count}{unit} reaches further than {MAX_SPAN_DAYS} days; no repair "
            "window is that long"
        )
    return count


def _keyword_window(text: str, now: int, today: int) -> tuple[int, int] | None:
    if text not in _KEYWORDS:
        return None
    this_day = datetime.fromtimestamp(today, UTC)
    sunday = today - ((this_day.weekday() + 1) % 7) * DAY  # Go counts weekdays from Sunday
    first_of_month = this_day.replace(day=1)
    first_of_last_month = (first_of_month - timedelta(days=1)).replace(day=1)
    return {
        "today": (today, today + DAY),
        "yesterday": (today - DAY, today),
        "week": (sunday, now),
        "lastweek": (sunday - WEEK, sunday),
        "month": (int(first_of_month.timestamp()), now),
        "lastmonth": (int(first_of_last_month.timestamp()), int(first_of_month.timestamp())),
    }[text]


def _rfc3339_pair(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise WindowError(f"window {text!r}: an RFC3339 window is exactly two times separated by one comma")
    return _rfc3339_time(text, parts[0], "start"), _rfc3339_time(text, parts[1], "end")


def _rfc3339_time(window: str, part: str, which: str) -> int:
    where = f"window {window!r}: the {which} {part!r}"
    if part != part.strip():
        raise WindowError(f"{where} has spaces around it; write the pair without spaces")
    if _RFC3339_FRACTION.match(part):
        raise WindowError(
            f"{where} has fractional seconds, which Kubecost does not accept; use whole seconds"
        )
    if offset := _RFC3339_OFFSET.match(part):
        raise WindowError(
            f"{where} has the UTC offset {offset[1]}; Kubecost accepts only 'Z' (convert to UTC)"
        )
    if _DATE_ONLY.match(part):
        raise WindowError(f"{where} is a date without a time; write {part}T00:00:00Z")
    if _RFC3339_NO_ZONE.match(part):
        raise WindowError(
            f"{where} has no zone; Kubecost needs YYYY-MM-DDTHH:MM:SSZ (UTC, with seconds and 'Z')"
        )
    if not _RFC3339_UTC.match(part):
        raise WindowError(f"{where} is not YYYY-MM-DDTHH:MM:SSZ (uppercase 'T' and 'Z', UTC)")
    try:
        moment = datetime.strptime(part, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise WindowError(f"{where} is not a real date and time ({exc})") from None
    return int(moment.timestamp())


def _hint(text: str) -> str:
    if text.lower() in _KEYWORDS:
        return f"keywords are lowercase ({text.lower()!r}); "
    if re.fullmatch(r"\d+\s*[A-Za-z]+", text):
        if re.fullmatch(r"\d+[MHDW]", text):
            return "duration units are lowercase m, h, d, w; "
        if " " in text:
            return "no space between the number and the unit; "
        return "duration units are m, h, d and w (no months or years); "
    if text.startswith("-"):
        return "durations count back from now and cannot be negative; "
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\S*", text):
        return "an RFC3339 window needs two times, start and end, separated by a comma; "
    return ""
