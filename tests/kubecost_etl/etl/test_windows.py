"""Repair windows: Kubecost's syntax resolved to UTC bounds, and the rules a repair adds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubecost_etl.etl.windows import RepairWindow, WindowError, resolve_window
from kubecost_sim.windows import parse_window as simulator_parse_window

NOW = datetime(2026, 1, 14, 10, 30, 15, tzinfo=UTC).timestamp()  # a Wednesday
MAX_DAYS = 31


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


GOOD = {
    "today": ("2026-01-14", "2026-01-15"),
    "yesterday": ("2026-01-13", "2026-01-14"),
    "week": ("2026-01-11", "2026-01-14T10:30:15"),  # from Sunday
    "lastweek": ("2026-01-04", "2026-01-11"),
    "month": ("2026-01-01", "2026-01-14T10:30:15"),
    "lastmonth": ("2025-12-01", "2026-01-01"),
    "7d": ("2026-01-08", "2026-01-15"),
    "2w": ("2026-01-01", "2026-01-15"),
    "3h": ("2026-01-14T08:00", "2026-01-14T11:00"),
    "30m": ("2026-01-14T10:01", "2026-01-14T10:31"),
    "2d offset 1d": ("2026-01-11T10:30:15", "2026-01-13T10:30:15"),
    f"{at('2026-01-12')},{at('2026-01-13')}": ("2026-01-12", "2026-01-13"),
    f"{at('2026-01-12')}|{at('2026-01-13')}": ("2026-01-12", "2026-01-13"),
    f"{at('2026-01-12')}-{at('2026-01-13')}": ("2026-01-12", "2026-01-13"),
    "2026-01-10T06:00:00Z,2026-01-12T00:00:00Z": ("2026-01-10T06:00", "2026-01-12"),
}


@pytest.mark.parametrize("text", sorted(GOOD))
def test_valid_windows_resolve_to_utc_bounds_as_kubecost_reads_them(text):
    window = resolve_window(text, NOW, MAX_DAYS)
    expected = tuple(at(moment) for moment in GOOD[text])
    assert (window.start, window.end) == expected
    # The simulator's independent reading of the same syntax must agree.
    assert simulator_parse_window(text, NOW) == expected


def test_the_request_carries_the_resolved_bounds_and_whole_days():
    window = resolve_window("2026-01-10T06:00:00Z,2026-01-12T00:00:00Z", NOW, MAX_DAYS)
    assert window.query == "2026-01-10T06:00:00Z,2026-01-12T00:00:00Z"
    assert window.days() == [at("2026-01-10"), at("2026-01-11")]
    assert "rebuilds 2 whole day(s) 2026-01-10 .. 2026-01-11" in window.describe()
    assert RepairWindow.from_dict(window.as_dict()) == window
    assert resolve_window("  yesterday ", NOW, MAX_DAYS).text == "yesterday"


BAD = [
    ("", "the window is empty"),
    ("   ", "the window is empty"),
    (None, "the window is empty"),
    ("Today", "keywords are lowercase"),
    ("7D", "units are lowercase"),
    ("7 d", "no space between the number and the unit"),
    ("3y", "no months or years"),
    ("-3d", "cannot be negative"),
    ("lastyear", "illegal window 'lastyear'"),
    ("2026-01-10T00:00:00.5Z,2026-01-11T00:00:00Z", "fractional seconds"),
    ("2026-01-10T00:00:00Z,2026-01-11T00:00:00.000Z", "fractional seconds"),
    ("2026-01-10T00:00:00+02:00,2026-01-11T00:00:00Z", "UTC offset +02:00"),
    ("2026-01-10T00:00:00Z,2026-01-11T00:00:00-0500", "UTC offset -0500"),
    ("2026-01-10,2026-01-11", "a date without a time"),
    ("2026-01-10T00:00:00,2026-01-11T00:00:00Z", "has no zone"),
    ("2026-01-10t00:00:00z,2026-01-11T00:00:00Z", "uppercase 'T' and 'Z'"),
    ("2026-13-01T00:00:00Z,2026-01-11T00:00:00Z", "not a real date and time"),
    ("2026-01-10T00:00:00Z, 2026-01-11T00:00:00Z", "spaces around it"),
    ("2026-01-10T00:00:00Z", "needs two times"),
    ("2026-01-10T00:00:00Z,2026-01-11T00:00:00Z,2026-01-12T00:00:00Z", "exactly two times"),
    ("2026-01-12T00:00:00Z,2026-01-11T00:00:00Z", "the end 2026-01-11T00:00:00Z is before the start"),
    (f"{at('2026-01-12')},{at('2026-01-11')}", "is before the start"),
    ("2026-01-11T00:00:00Z,2026-01-11T00:00:00Z", "is empty: it starts and ends at"),
    ("0d", "is empty"),
    ("2026-01-15T00:00:00Z,2026-01-16T00:00:00Z", "is in the future"),
    ("2026-01-14T00:00:00Z,2026-01-14T23:00:00Z", "reaches into the future"),
    ("2026-01-13T00:00:00Z,2026-01-16T00:00:00Z", "reaches into the future"),
    (f"{at('2026-01-12') * 1000},{at('2026-01-13') * 1000}", "looks like milliseconds"),
    ("40d", "too long: it covers 40 days, more than the maximum of 31"),
    ("2025-11-01T00:00:00Z,2026-01-01T00:00:00Z", "too long"),
    ("200000000d", "200000000d reaches further than 36600 days"),
    ("99999999999w offset 1d", "99999999999w reaches further than 36600 days"),
    ("1d offset 99999999999999999999m", "reaches further than 36600 days"),
    ("0,99999999999", "reaches into the future"),
    ("\uff11d", "only ASCII letters, digits and punctuation"),  # a full-width 1
    ("\u0663d", "only ASCII"),  # an Arabic-Indic 3
    ("7" * 101 + "d", "the window is 102 characters long; a window is at most 100"),
]


@pytest.mark.parametrize(("text", "problem"), BAD, ids=[repr(t) for t, _ in BAD])
def test_bad_windows_are_refused_naming_the_problem(text, problem):
    with pytest.raises(WindowError) as raised:
        resolve_window(text, NOW, MAX_DAYS)
    assert problem in str(raised.value)


def test_the_period_in_progress_may_be_repaired_but_not_beyond():
    assert resolve_window("2026-01-14T00:00:00Z,2026-01-15T00:00:00Z", NOW, MAX_DAYS).end == at("2026-01-15")
    assert resolve_window("2026-01-14T00:00:00Z,2026-01-14T11:00:00Z", NOW, MAX_DAYS).end == at(
        "2026-01-14T11:00"
    )
    assert resolve_window("3h", at("2026-01-14T10:00"), MAX_DAYS).end == at("2026-01-14T11:00")  # on the hour
    with pytest.raises(WindowError, match="reaches into the future"):
        resolve_window(f"{at('2026-01-14')},{int(NOW) + 5}", NOW, MAX_DAYS)


def test_huge_windows_are_refused_without_building_anything():
    import time
    import tracemalloc

    from kubecost_etl.errors import Refusal

    texts = ("200000000d", "99999999999w offset 1d", "9" * 10_000_000 + "d")
    tracemalloc.start()
    started = time.perf_counter()
    for text in texts:
        with pytest.raises(Refusal):
            resolve_window(text, NOW, MAX_DAYS)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000 and elapsed < 1.0  # no list of days, no big integers: not the gigabytes of before
    assert RepairWindow("x", 0, 400 * 365 * 86400).day_count == 146000  # counted, not listed
    with pytest.raises(WindowError, match="more than 36600"):
        RepairWindow("x", 0, 400 * 365 * 86400).days()
