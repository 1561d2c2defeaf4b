"""The data Prometheus really holds, asked from the simulator's Prometheus over real sockets."""

from __future__ import annotations

import socket
import time

import pytest
from kubecost_etl.errors import ConfigError, Refusal
from kubecost_etl.etl.windows import DAY, HOUR, RepairWindow, iso
from kubecost_etl.repair.prometheus_coverage import (
    DEFAULT_METRICS,
    MAX_POINTS,
    CoverageReport,
    CoverageUnknown,
    InsufficientCoverage,
    checked_hours,
    measure,
    newest_snapshot_covering,
    parse_allowed_days,
    range_queries,
    refuse_if_short,
)
from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp
from kubecost_etl.snapshots.repository import Manifest, Repository
from kubecost_etl.storage.filesystem import FilesystemStore

METRICS = ("node_total_hourly_cost", "container_cpu_allocation")


def whole_days(first_ago: int, last_ago: int, now: int) -> RepairWindow:
    """The whole days from ``first_ago`` days ago to ``last_ago`` days ago (inclusive)."""
    today = now - now % DAY
    return RepairWindow("test", today - first_ago * DAY, today - (last_ago - 1) * DAY)


def range_requests(sim) -> list[dict]:
    return [e["query"] for e in sim.request_log_lines() if e["path"] == "/api/v1/query_range"]


@pytest.fixture
def prometheus(repair_cluster):
    """(simulator, a transport to its Prometheus port) with the request log emptied."""
    return repair_cluster.sim, DirectHttp(repair_cluster.sim.prometheus_url, timeout=5)


def test_after_a_wipe_older_days_are_refused_and_days_inside_the_data_pass(prometheus):
    sim, http = prometheus
    now = int(time.time())
    sim.set_faults(prometheus_data_from=now - now % DAY - 3 * DAY)  # retention still says 15d
    old = measure(http, METRICS, whole_days(6, 4, now), now, hourly_hours=49)
    assert [(d.date, d.covered, d.checked) for d in old.days] == [
        (iso(now - now % DAY - n * DAY)[:10], 0, 24) for n in (6, 5, 4)
    ]
    with pytest.raises(InsufficientCoverage) as refused:
        refuse_if_short(old, set())
    message = str(refused.value)
    for day in old.days:
        assert f"{day.date}: 0/24 hours (0%)" in message
    assert "Kubecost issue #1920" in message and "allow_partial_days" in message
    assert "no verified snapshot covers them" in message

    inside = measure(http, METRICS, whole_days(3, 1, now), now, hourly_hours=49)
    assert inside.below() == [] and refuse_if_short(inside, set()) == []
    assert all(d.covered == d.checked == 24 for d in inside.days)
    assert len(range_requests(sim)) == 2 * len(METRICS)  # one query per metric and preflight


def test_a_one_day_gap_refuses_exactly_that_day_unless_allowed(prometheus):
    sim, http = prometheus
    now = int(time.time())
    window = whole_days(4, 2, now)
    middle = window.first_day + DAY
    sim.set_faults(prometheus_gap=[f"{middle},{middle + DAY}"])
    report = measure(http, METRICS, window, now, hourly_hours=49)
    assert [d.date for d in report.below()] == [iso(middle)[:10]]
    assert report.below()[0].missing == tuple(range(middle, middle + DAY, HOUR))
    assert report.below()[0].missing_by_metric == dict.fromkeys(METRICS, 24)
    with pytest.raises(InsufficientCoverage) as refused:
        refuse_if_short(report, set())
    assert f"{iso(middle)[:10]}: 0/24 hours" in str(refused.value)
    assert iso(window.first_day)[:10] not in str(refused.value).split("(Kubecost issue #1920)")[1]
    with pytest.raises(
        InsufficientCoverage, match="restore those days from snapshot 20260101T000000Z-abcdef"
    ):
        refuse_if_short(report, set(), "20260101T000000Z-abcdef")
    passed = refuse_if_short(report, parse_allowed_days([iso(middle)[:10]], window))
    assert [d.date for d in passed] == [iso(middle)[:10]]
    assert "BELOW " + iso(middle)[:10] in report.table() and report.table().count("ok   ") == 2
    assert CoverageReport.from_dict(report.as_dict()) == report


def test_min_coverage_lets_a_partly_covered_day_pass_but_never_a_missing_hourly_store_hour(prometheus):
    sim, http = prometheus
    now = int(time.time())
    window = whole_days(5, 5, now)
    sim.set_faults(prometheus_gap=[f"{window.first_day + 2 * HOUR},{window.first_day + 5 * HOUR}"])
    report = measure(http, METRICS, window, now, hourly_hours=49, min_coverage=0.85)
    assert [(d.covered, d.checked) for d in report.days] == [(21, 24)] and report.below() == []
    strict = measure(http, METRICS, window, now, hourly_hours=49)
    assert [d.date for d in strict.below()] == [iso(window.first_day)[:10]]

    # Yesterday lies inside the 49-hour hourly store: one missing hour is one emptied 1h file.
    yesterday = whole_days(1, 1, now)
    hole = yesterday.first_day + 12 * HOUR
    sim.set_faults(prometheus_gap=[f"{hole},{hole + HOUR}"])
    hourly = measure(http, METRICS, yesterday, now, hourly_hours=49, min_coverage=0.5)
    [day] = hourly.below()
    assert (day.covered, day.hourly_missing) == (23, (hole,))
    assert "1 of them in the hourly store" in day.describe()
    daily_only = measure(http, METRICS, yesterday, now, hourly_hours=1, min_coverage=0.5)
    assert daily_only.below() == []  # not in the hourly store: the day's share decides


def test_one_query_per_metric_whatever_the_window_length(prometheus):
    sim, http = prometheus
    now = int(time.time())
    for days in (1, 31, 400):
        measure(http, METRICS, whole_days(days, 1, now), now, hourly_hours=49)
    assert len(range_requests(sim)) == 3 * len(METRICS)
    assert all(
        q["step"] == "3600" and q["query"].startswith("count(count_over_time(") for q in range_requests(sim)
    )
    # Only past Prometheus' 11,000 points per series is a window split (458 days), still not per day.
    hours = list(range(0, (MAX_POINTS + 1) * HOUR, HOUR))
    assert [len(range_queries("m", hours[:MAX_POINTS])), len(range_queries("m", hours))] == [1, 2]
    assert range_queries("m", hours)[1]["start"] == str(MAX_POINTS * HOUR + HOUR - 1)


def test_today_counts_only_the_hours_that_have_ended():
    now = 10 * DAY + 5 * HOUR + 1800
    assert checked_hours(RepairWindow("today", 10 * DAY, 11 * DAY), now) == [
        10 * DAY + h * HOUR for h in range(5)
    ]


def test_through_the_service_proxy(repair_cluster):
    now = int(time.time())
    http = ServiceProxyHttp(repair_cluster.core().api_client, "kubecost", "kubecost-prometheus-server:80")
    report = measure(http, DEFAULT_METRICS, whole_days(2, 1, now), now, hourly_hours=49)
    assert report.below() == [] and report.queries == len(DEFAULT_METRICS)
    assert "kubecost-prometheus-server" in report.source


@pytest.mark.parametrize(
    ("faults", "problem"),
    [
        ({"prometheus_http_status": 503}, "HTTP 503"),
        ({"prometheus_http_status": 400}, "HTTP 400"),
        ({"prometheus_body": '{"status": "succ'}, "unreadable answer (JSONDecodeError"),
        ({"prometheus_body": "[1, 2]"}, "unreadable answer"),
        (
            {"prometheus_body": '{"status": "success", "data": {"resultType": "vector", "result": []}}'},
            "not a matrix",
        ),
        (
            {
                "prometheus_body": (
                    '{"status": "success", "data": {"resultType": "matrix", "result": [{"values": [["x"]]}]}}'
                )
            },
            "unreadable answer",
        ),
        ({"prometheus_delay_seconds": 3}, "no answer (GET"),
    ],
)
def test_prometheus_faults_are_refusals(prometheus, faults, problem):
    sim, _ = prometheus
    sim.set_faults(**faults)
    now = int(time.time())
    with pytest.raises(CoverageUnknown, match=problem.replace("(", r"\(")) as refused:
        measure(
            DirectHttp(sim.prometheus_url, timeout=1), METRICS, whole_days(2, 1, now), now, hourly_hours=49
        )
    assert isinstance(refused.value, Refusal)  # a refusal: the preflight stops, nothing is retried


def test_unreachable_or_missing_prometheus_and_an_empty_metric_list_are_refusals(repair_cluster):
    now = int(time.time())
    window = whole_days(2, 1, now)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(CoverageUnknown, match="no answer .*ConnectionError"):
        measure(DirectHttp(f"http://127.0.0.1:{closed}", timeout=2), METRICS, window, now, 49)
    proxy = ServiceProxyHttp(repair_cluster.core().api_client, "kubecost", "no-such-prometheus:80")
    with pytest.raises(CoverageUnknown, match="HTTP 404: the Kubernetes API's service proxy"):
        measure(proxy, METRICS, window, now, 49)
    with pytest.raises(ConfigError, match="expected a non-empty list"):
        measure(DirectHttp(repair_cluster.sim.prometheus_url), [], window, now, 49)


def test_allowed_days_must_be_dates_of_the_window():
    window = RepairWindow("w", 20 * DAY, 23 * DAY)
    assert parse_allowed_days(None, window) == set()
    assert parse_allowed_days([iso(21 * DAY)[:10]], window) == {iso(21 * DAY)[:10]}
    with pytest.raises(ConfigError, match="is not a day of the window"):
        parse_allowed_days([iso(25 * DAY)[:10]], window)
    with pytest.raises(ConfigError, match="is not a date YYYY-MM-DD"):
        parse_allowed_days(["yesterday"], window)
    with pytest.raises(ConfigError, match="expected a list of dates"):
        parse_allowed_days("1970-01-22", window)


def _snapshot(repository: Repository, snapshot_id: str, first: int, end: int, ok: bool) -> None:
    windows = {"windows": [[iso(first), iso(end)]]}
    repository.commit(
        Manifest(snapshot_id, "sim", iso(end), [], coverage={"allocations/1d": windows, "assets/1d": windows})
    )
    repository.record_verification(snapshot_id, {"ok": ok})


def test_the_newest_verified_snapshot_that_covers_the_days(tmp_path):
    repository = Repository(FilesystemStore(tmp_path), "sim")
    days = [30 * DAY, 31 * DAY]
    assert newest_snapshot_covering(repository, days) is None
    _snapshot(repository, "19700201T000000Z-aaaaaa", 0, 32 * DAY, ok=True)
    _snapshot(repository, "19700202T000000Z-bbbbbb", 0, 33 * DAY, ok=False)  # failed its verification
    _snapshot(repository, "19700203T000000Z-cccccc", 31 * DAY, 34 * DAY, ok=True)  # lacks day 30
    assert newest_snapshot_covering(repository, days) == "19700201T000000Z-aaaaaa"
    assert newest_snapshot_covering(repository, [31 * DAY]) == "19700203T000000Z-cccccc"
    report = CoverageReport(("m",), 1.0, (), 1, "test")
    assert refuse_if_short(report, set(), "19700201T000000Z-aaaaaa") == []  # nothing short: nothing to say
