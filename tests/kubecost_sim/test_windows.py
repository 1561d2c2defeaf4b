"""The simulator's window parser: Kubecost/OpenCost syntax relative to a fixed "now"."""

from datetime import UTC, datetime

import pytest
from kubecost_sim.windows import WindowError, parse_duration, parse_window


def utc(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())


NOW = utc("2023-01-04T10:30:15")  # a Wednesday; that week's Sunday is 2023-01-01


@pytest.mark.parametrize(
    ("window", "start", "end"),
    [
        ("today", "2023-01-04T00:00:00", "2023-01-05T00:00:00"),
        ("yesterday", "2023-01-03T00:00:00", "2023-01-04T00:00:00"),
        ("week", "2023-01-01T00:00:00", "2023-01-04T10:30:15"),
        ("lastweek", "2022-12-25T00:00:00", "2023-01-01T00:00:00"),
        ("month", "2023-01-01T00:00:00", "2023-01-04T10:30:15"),
        ("lastmonth", "2022-12-01T00:00:00", "2023-01-01T00:00:00"),
        # durations end with the current unit: "7d" is today and the six days before
        ("7d", "2022-12-29T00:00:00", "2023-01-05T00:00:00"),
        ("1d", "2023-01-04T00:00:00", "2023-01-05T00:00:00"),
        ("24h", "2023-01-03T11:00:00", "2023-01-04T11:00:00"),
        ("30m", "2023-01-04T10:01:00", "2023-01-04T10:31:00"),
        ("2w", "2022-12-22T00:00:00", "2023-01-05T00:00:00"),
        ("0d", "2023-01-05T00:00:00", "2023-01-05T00:00:00"),
        # offsets move the end back from now and are not aligned
        ("3d offset 1d", "2022-12-31T10:30:15", "2023-01-03T10:30:15"),
        ("2h offset 30m", "2023-01-04T08:00:15", "2023-01-04T10:00:15"),
        ("1w offset 1w", "2022-12-21T10:30:15", "2022-12-28T10:30:15"),
        ("1672531200,1672790400", "2023-01-01T00:00:00", "2023-01-04T00:00:00"),
        ("1672531200|1672790400", "2023-01-01T00:00:00", "2023-01-04T00:00:00"),
        ("1672531200-1672790400", "2023-01-01T00:00:00", "2023-01-04T00:00:00"),
        ("2023-01-01T00:00:00Z,2023-01-04T00:00:00Z", "2023-01-01T00:00:00", "2023-01-04T00:00:00"),
        ("2023-01-01T06:15:30Z,2023-01-01T06:15:30Z", "2023-01-01T06:15:30", "2023-01-01T06:15:30"),
    ],
)
def test_accepted_windows(window, start, end):
    assert parse_window(window, NOW + 0.75) == (utc(start), utc(end))


@pytest.mark.parametrize(
    "window",
    [
        "",
        "Today",
        "now",
        " 7d",
        "7d ",
        "7D",
        "7y",
        "-7d",
        "1.5d",
        "7 d",
        "7d offset",
        "7d offset -1d",
        "7d  offset 1d",
        "2023-01-01T00:00:00.000Z,2023-01-04T00:00:00Z",  # fractions
        "2023-01-01T00:00:00Z,2023-01-04T00:00:00.5Z",
        "2023-01-01T00:00:00+00:00,2023-01-04T00:00:00Z",  # offsets instead of Z
        "2023-01-01T00:00:00Z,2023-01-04T00:00:00+01:00",
        "2023-01-01T00:00:00z,2023-01-04T00:00:00z",
        "2023-01-01,2023-01-04",
        "2023-01-01T00:00:00Z",
        "2023-01-01T00:00:00Z 2023-01-04T00:00:00Z",
        "x2023-01-01T00:00:00Z,2023-01-04T00:00:00Z",
        "2023-01-01T00:00:00Z,2023-01-04T00:00:00Zx",
        "2023-13-01T00:00:00Z,2023-01-04T00:00:00Z",  # impossible date
        "1672531200,1672790400,1672876800",
        "1672531200;1672790400",
        "1672531200,",
    ],
)
def test_refused_windows(window):
    with pytest.raises(WindowError, match=r"^illegal window: "):
        parse_window(window, NOW)


@pytest.mark.parametrize(
    "window", ["2023-01-04T00:00:00Z,2023-01-01T00:00:00Z", "1672790400,1672531200", "1672790400-1672531200"]
)
def test_window_ending_before_it_starts_is_refused(window):
    with pytest.raises(WindowError, match=r"end before start"):
        parse_window(window, NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15d", 15 * 86400),
        ("97h", 97 * 3600),
        ("1h30m", 5400),
        ("2w", 14 * 86400),
        ("1y", 365 * 86400),
        ("45s", 45),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "d", "1d1d", "30m1h", "1.5h", "15 d", "-1d"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)
