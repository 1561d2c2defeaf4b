"""Reading a repair step's progress from cost-model log lines (pure logic, no I/O).

- ``read_message``: a line's message without its plain, glog or JSON framing.
- ``expectation``: the days (and hours) a step must report for a window (``Expectation``).
- ``StepTracker``: matches messages against a step's patterns: progress per pass, failures.
- ``LogCursor``: the position in a ``timestamps=true`` log, so each read returns only new lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubecost_etl.etl.windows import DAY, HOUR, RepairWindow, ceil_to, iso
from kubecost_etl.repair.profiles import RepairProfile, StepLog

REQUIRED, OPTIONAL, NONE = "required", "optional", "none"

_K8S_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")
_PLAIN = re.compile(r"^(?:\d{4}-\d\d-\d\dT\S+\s+)?(?:TRC|DBG|INF|WRN|ERR|FTL|PNC)\s+(?P<message>.*)$")
_GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] (?:\[\w+\] )?(?P<message>.*)$")


# ------------------------------------------------------------------------------------------ lines


def parse_k8s_timestamp(text: str) -> int:
    """Nanoseconds since the epoch of a Kubernetes log timestamp (RFC3339 with up to 9 fraction digits)."""
    match = _K8S_STAMP.match(text)
    if not match:
        raise ValueError(f"not a Kubernetes log timestamp: {text!r}")
    seconds = int(datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))


def since_time(ns: int) -> str:
    """``sinceTime`` for a read that must include the line at ``ns`` (second precision, rounded down)."""
    return iso(ns // 1_000_000_000)


def read_message(text: str) -> str:
    """The message of a cost-model line: plain (``<time> INF <msg>``), glog or JSON framing removed."""
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return text
        if isinstance(record, dict):
            message = record.get("message", record.get("msg"))
            if isinstance(message, str):
                return message
        return text
    for framing in (_PLAIN, _GLOG):
        if match := framing.match(text):
            return match["message"]
    return text


def _window_seconds(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp())


# ----------------------------------------------------------------------------------- expectations


def hourly_mode(window_start: int, now: int, hourly_hours: int) -> str:
    """Whether a window's repair also rebuilds the hourly store: required, optional or none.

    The hourly store holds ``hourly_hours`` files ending with the hour in progress. Within an
    hour of its edge the answer depends on when Kubecost looks (the edge moves every hour), so
    the hourly pass is then optional: followed if it starts, not waited for if it does not.
    """
    oldest_hour = now - now % HOUR + HOUR - hourly_hours * HOUR
    if window_start >= oldest_hour + HOUR:
        return REQUIRED
    if window_start >= oldest_hour:
        return OPTIONAL
    return NONE


@dataclass(frozen=True)
class Expectation:
    """What must appear in the log for one step to be complete (JSON via ``as_dict``, carried by
    the trigger).
    """

    profile: str
    step: str
    days: tuple[int, ...]  # unix seconds of each day's midnight (UTC)
    hours: tuple[int, ...]  # starts of the hours of the hourly pass (none when ``hourly`` is NONE)
    hourly: str  # NONE, OPTIONAL or REQUIRED (``hourly_mode``)
    provider_keys: tuple[str, ...] | None  # keyed steps: None means whichever integrations the log shows

    def as_dict(self) -> dict:
        return {
            "profile": self.profile,
            "step": self.step,
            "days": list(self.days),
            "hours": list(self.hours),
            "hourly": self.hourly,
            "provider_keys": None if self.provider_keys is None else list(self.provider_keys),
        }

    @classmethod
    def from_dict(cls, data: dict | Expectation) -> Expectation:
        if isinstance(data, Expectation):
            return data
        keys = data["provider_keys"]
        return cls(
            data["profile"],
            data["step"],
            tuple(data["days"]),
            tuple(data["hours"]),
            data["hourly"],
            None if keys is None else tuple(keys),
        )


def expectation(
    profile: RepairProfile,
    step_name: str,
    window: RepairWindow,
    now: int,
    hourly_hours: int,
    provider_keys: list[str] | None,
) -> Expectation:
    """What must appear in the log for one step to be complete.

    Days (and hours) cover the window and stop with the period in progress, as Kubecost does.
    ``provider_keys`` None means "whichever cloud integrations the log shows" (at least one).
    """
    step = profile.step(step_name)
    days = range(window.first_day, min(ceil_to(window.end, DAY), now - now % DAY + DAY), DAY)
    hourly = hourly_mode(window.start, now, hourly_hours) if step.hourly else NONE
    hours = (
        ()
        if hourly == NONE
        else range(
            window.start - window.start % HOUR, min(ceil_to(window.end, HOUR), now - now % HOUR + HOUR), HOUR
        )
    )
    keys = None if not step.keyed or provider_keys is None else tuple(provider_keys)
    return Expectation(profile.name, step_name, tuple(days), tuple(hours), hourly, keys)


# ------------------------------------------------------------------------------------------ passes


@dataclass
class _Pass:
    """One sweep over the window: a resolution of a store step, or one cloud integration key."""

    label: str
    unit: int
    expected: list[int]
    required: bool
    started: bool = False
    announced: tuple[str, str] | None = None
    covered: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return self.covered.issuperset(self.expected)

    def cover(self, start: int, end: int) -> None:
        self.covered.update(p for p in self.expected if start <= p and p + self.unit <= end)

    def summary(self) -> dict:
        missing = [iso(p) for p in self.expected if p not in self.covered]
        return {
            "pass": self.label,
            "expected": len(self.expected),
            "done": len(self.expected) - len(missing),
            "missing": missing[:6] + (["..."] if len(missing) > 6 else []),
            "announced": self.announced,
            "required": self.required,
        }


@dataclass(frozen=True)
class Outcome:
    status: str  # "done" or "failed"
    message: str
    line: str | None = None


class StepTracker:
    """Matches log messages against one step's expectation."""

    def __init__(self, profile: RepairProfile, expected: Expectation | dict):
        expected = Expectation.from_dict(expected)
        self.step = profile.step(expected.step)
        self.log: StepLog = profile.step_log(self.step.name)
        self.failures = profile.log_patterns.failures
        self.days = list(expected.days)
        self.keys = None if expected.provider_keys is None else list(expected.provider_keys)
        self.passes: dict[str, _Pass] = {}
        if self.step.keyed:
            for key in self.keys or []:
                self._add_key(key)
        else:
            self.passes["1d"] = _Pass(f"{self.step.title}[1d]", DAY, self.days, required=True)
            if expected.hourly != NONE:
                self.passes["1h"] = _Pass(
                    f"{self.step.title}[1h]", HOUR, list(expected.hours), required=expected.hourly == REQUIRED
                )

    def _add_key(self, key: str) -> _Pass:
        self.passes[key] = _Pass(f"{self.step.title}[{key}]", DAY, self.days, required=True)
        return self.passes[key]

    def _pass_for(self, match: re.Match) -> _Pass | None:
        if not self.step.keyed:
            return self.passes.get(match["res"])
        key = match["key"]
        if key not in self.passes and self.keys is None:
            return self._add_key(key)  # integrations are learnt from the log when not named
        return self.passes.get(key)

    def feed(self, message: str) -> str | None:
        """Take one message; return a failure's reason if it is a failure line."""
        for failure in self.failures:
            if failure.search(message):
                return f"Kubecost logged a failure during the {self.step.title} repair"
        for pattern in self.log.start:
            if match := pattern.search(message):
                if sweep := self._pass_for(match):
                    sweep.started = True
                    sweep.announced = (match["span_from"], match["span_to"])
                    sweep.covered.clear()  # earlier lines belonged to another run
                return None
        for pattern in self.log.progress + self.log.build:
            if match := pattern.search(message):
                sweep = self._pass_for(match)
                if sweep and (sweep.started or not self.log.start_required):
                    sweep.cover(_window_seconds(match["window_from"]), _window_seconds(match["window_to"]))
                return None
        return None

    @property
    def done(self) -> bool:
        if not self.passes:
            return False
        return all(p.complete for p in self.passes.values() if p.required or p.started)

    def days_done(self) -> int:
        """Days every daily pass has finished (for keyed steps: done for every integration)."""
        daily = [p for p in self.passes.values() if p.unit == DAY]
        return min((len(p.covered) for p in daily), default=0)

    def summary(self) -> list[dict]:
        return [p.summary() for p in self.passes.values()]

    def missing(self) -> str:
        parts = []
        for sweep in self.passes.values():
            if (sweep.required or sweep.started) and not sweep.complete:
                info = sweep.summary()
                state = "started" if sweep.started else "not started"
                parts.append(
                    f"{sweep.label} {state}, {info['done']}/{info['expected']} done, waiting for "
                    f"{', '.join(info['missing'])}"
                )
        if not self.passes:
            parts.append(f"no {self.step.title} pass seen for any cloud integration")
        return "; ".join(parts)


# ------------------------------------------------------------------------------------------ cursor


@dataclass
class LogCursor:
    """The position in the log: the last line seen (ns) and how many lines carried that exact time."""

    last_ns: int | None = None
    at_last: int = 0
    _skip_at_last: int = field(default=0, init=False, repr=False, compare=False)

    def since_time(self) -> str | None:
        return None if self.last_ns is None else since_time(self.last_ns)

    def take(self, ns: int) -> bool:
        """Whether a line read with this cursor's ``sinceTime`` is new; advances past it if so.

        Lines come in log order; those at the cursor's exact nanosecond were already seen
        ``at_last`` times, so only the ones after that many are new.
        """
        if self.last_ns is not None:
            if ns < self.last_ns:
                return False
            if ns == self.last_ns:
                if self._skip_at_last > 0:
                    self._skip_at_last -= 1
                    return False
                self.at_last += 1
                return True
        self.last_ns, self.at_last = ns, 1
        self._skip_at_last = 0
        return True

    def begin_read(self) -> None:
        self._skip_at_last = self.at_last

    def as_dict(self) -> dict:
        return {"last_ns": self.last_ns, "at_last": self.at_last}

    @classmethod
    def from_dict(cls, data: dict | None) -> LogCursor:
        return cls(**data) if data else cls()

    @classmethod
    def after(cls, raw_tail: bytes) -> LogCursor:
        """A cursor after the last lines of ``raw_tail`` (a ``tailLines`` read with timestamps)."""
        cursor = cls()
        for ns, _ in split_lines(raw_tail):
            cursor.take(ns)
        return cursor


def split_lines(raw: bytes) -> list[tuple[int, str]]:
    """``(ns, text)`` of the complete lines of a ``timestamps=true`` read (a cut last line is left
    for the next).
    """
    lines = []
    for row in raw[: raw.rfind(b"\n") + 1].decode("utf-8", "replace").splitlines():
        stamp, _, text = row.partition(" ")
        try:
            lines.append((parse_k8s_timestamp(stamp), text))
        except ValueError:
            continue  # not a timestamped line (cannot happen with timestamps=true); nothing to follow
    return lines
