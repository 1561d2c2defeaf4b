"""The simulated Prometheus over real sockets: retention endpoints, the data it holds, range
queries, faults.
"""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubecost_sim.faults import Faults
from kubecost_sim.prometheus import Prometheus, flag_duration, prometheus_duration
from kubecost_sim.requestlog import RequestLog

NOW = 1673346600.0  # 2023-01-10T10:30:00Z
DAY = 86400


def query_prometheus(
    tmp_path, retention_seconds, requests, faults: dict | None = None, size: str | None = None
):
    """Send (method, path, params) requests; return [(status, body)] and the request log lines."""
    log_path = tmp_path / "requests.jsonl"
    switches = Faults()
    switches.update(faults or {})
    prometheus = Prometheus(
        retention_seconds, RequestLog(log_path), now=lambda: NOW, faults=switches, retention_size=size
    )

    async def scenario():
        answers = []
        async with TestClient(TestServer(prometheus.app(), host="127.0.0.1", port=0)) as client:
            for method, path, params in requests:
                response = await client.request(method, path, params=params)
                body = await response.text()
                try:
                    answers.append((response.status, json.loads(body)))
                except ValueError:
                    answers.append((response.status, body))
        return answers

    answers = asyncio.run(scenario())
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    return answers, logged


def test_retention_endpoints(tmp_path):
    answers, logged = query_prometheus(
        tmp_path,
        15 * DAY,
        [
            ("GET", "/api/v1/status/runtimeinfo", {}),
            ("GET", "/api/v1/status/flags", {}),
            ("GET", "/-/ready", {}),
        ],
    )
    (status, runtime), (_, flags), (ready_status, ready) = answers
    assert status == 200 and runtime["status"] == "success"
    assert runtime["data"]["storageRetention"] == "15d"
    assert flags["data"]["storage.tsdb.retention.time"] == "15d"
    assert (ready_status, ready) == (200, "Prometheus Server is Ready.\n")
    assert [entry["path"] for entry in logged] == [
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/flags",
        "/-/ready",
    ]


def test_retention_in_hours_as_the_2x_chart_sets_it(tmp_path):
    answers, _ = query_prometheus(
        tmp_path, 97 * 3600, [("GET", "/api/v1/status/runtimeinfo", {}), ("GET", "/api/v1/status/flags", {})]
    )
    assert answers[0][1]["data"]["storageRetention"] == "4d1h"
    assert answers[1][1]["data"]["storage.tsdb.retention.time"] == "97h"


def test_instant_query_is_empty_before_the_cutoff(tmp_path):
    inside, before_cutoff = NOW - 6 * DAY, NOW - 8 * DAY
    answers, logged = query_prometheus(
        tmp_path,
        7 * DAY,
        [
            ("GET", "/api/v1/query", {"query": "up", "time": str(inside)}),
            ("GET", "/api/v1/query", {"query": "up", "time": str(before_cutoff)}),
            ("GET", "/api/v1/query", {"query": "up", "time": "2023-01-09T00:00:00Z"}),
            ("POST", "/api/v1/query", {"query": "up"}),
            ("GET", "/api/v1/query", {"time": str(inside)}),
            ("GET", "/api/v1/query", {"query": "up", "time": "yesterday"}),
        ],
    )
    (_, sample), (_, empty), (_, rfc3339), (_, posted), (missing_status, missing), (bad_status, bad) = answers
    assert sample["data"]["resultType"] == "vector"
    assert sample["data"]["result"] == [
        {
            "metric": {"__name__": "up", "instance": "localhost:9090", "job": "prometheus"},
            "value": [inside, "1"],
        }
    ]
    assert empty == {"status": "success", "data": {"resultType": "vector", "result": []}}
    assert len(rfc3339["data"]["result"]) == 1 and len(posted["data"]["result"]) == 1
    assert missing_status == 400 and missing["errorType"] == "bad_data"
    assert bad_status == 400 and bad["status"] == "error"
    assert logged[1]["query"] == {"query": "up", "time": str(before_cutoff)}


@pytest.mark.parametrize(
    ("seconds", "model_text", "flag_text"),
    [
        (15 * DAY, "15d", "15d"),
        (14 * DAY, "2w", "14d"),
        (97 * 3600, "4d1h", "97h"),
        (365 * DAY, "1y", "365d"),
        (90 * 60, "1h30m", "90m"),
    ],
)
def test_duration_texts(seconds, model_text, flag_text):
    assert prometheus_duration(seconds) == model_text
    assert flag_duration(seconds) == flag_text


HOUR = 3600
TODAY = int(NOW) // DAY * DAY


def hours_with_samples(
    tmp_path,
    faults=None,
    metric="node_total_hourly_cost",
    start=TODAY - 6 * DAY + HOUR,
    end=TODAY,
    retention=15 * DAY,
):
    """The hour ends (unix seconds) at which ``count(count_over_time(metric[1h]))`` has a point."""
    query = {
        "query": f"count(count_over_time({metric}[1h]))",
        "start": str(start),
        "end": str(end),
        "step": "1h",
    }
    [(status, body)], _ = query_prometheus(
        tmp_path, retention, [("GET", "/api/v1/query_range", query)], faults
    )
    assert status == 200, body
    assert body["data"]["resultType"] == "matrix"
    return [t for series in body["data"]["result"] for t, _ in series["values"]]


def test_range_queries_see_every_hour_inside_the_retention(tmp_path):
    hours = hours_with_samples(tmp_path)
    assert hours == list(range(TODAY - 6 * DAY + HOUR, TODAY + 1, HOUR))  # 144 points, one per hour


def test_samples_exist_only_from_data_from_although_the_retention_says_15d(tmp_path):
    wiped_at = TODAY - 3 * DAY + 1800  # Prometheus came back half way through an hour
    hours = hours_with_samples(tmp_path, {"prometheus_data_from": wiped_at})
    assert (
        hours[0] == TODAY - 3 * DAY + HOUR
    )  # the hour the data starts in has samples (from its second half)
    assert hours == list(range(TODAY - 3 * DAY + HOUR, TODAY + 1, HOUR))
    answers, _ = query_prometheus(
        tmp_path,
        15 * DAY,
        [
            ("GET", "/api/v1/status/runtimeinfo", {}),
            ("GET", "/api/v1/query", {"query": "up", "time": str(wiped_at - 60)}),
        ],
        {"prometheus_data_from": wiped_at},
    )
    assert answers[0][1]["data"]["storageRetention"] == "15d"
    assert answers[1][1]["data"]["result"] == []


def test_a_gap_removes_exactly_its_hours_and_counts_are_per_scrape(tmp_path):
    gap = (TODAY - 2 * DAY, TODAY - DAY)
    # Evaluated one second before each hour's end, (t - 1h, t] is the hour [h, h + 1h) of
    # whole-second scrapes.
    hours = hours_with_samples(
        tmp_path, {"prometheus_gap": [f"{gap[0]},{gap[1]}"]}, start=TODAY - 3 * DAY + HOUR - 1, end=TODAY - 1
    )
    missing = set(range(TODAY - 3 * DAY + HOUR - 1, TODAY, HOUR)) - set(hours)
    assert (
        missing == set(range(gap[0] + HOUR - 1, gap[1], HOUR)) and len(missing) == 24
    )  # the gap's hours only
    query = {
        "query": "sum(count_over_time(container_cpu_allocation[1h]))",
        "start": str(gap[0] - HOUR),
        "end": str(gap[0] + 1800),
        "step": "1800",
    }
    [(_, body)], _ = query_prometheus(
        tmp_path,
        15 * DAY,
        [("GET", "/api/v1/query_range", query)],
        {"prometheus_gap": [f"{gap[0]},{gap[1]}", f"{gap[0] - 600},{gap[0] - 300}"]},
    )
    # 60 scrapes an hour in (t - 1h, t]; 5 fall in the short gap; none at or after the long gap's start
    assert body["data"]["result"][0]["values"] == [
        [gap[0] - HOUR, "60"],
        [gap[0] - 1800, "60"],
        [gap[0], "54"],
        [gap[0] + 1800, "24"],
    ]


def test_unknown_metrics_are_empty_and_the_metric_name_is_kept_only_for_selectors(tmp_path):
    queries = [
        (
            "GET",
            "/api/v1/query_range",
            {"query": q, "start": str(TODAY - HOUR), "end": str(TODAY), "step": "3600"},
        )
        for q in ("no_such_metric", "node_cpu_hourly_cost{}", "present_over_time(node_cpu_hourly_cost[1h])")
    ]
    [(_, unknown), (_, selector), (_, present)], _ = query_prometheus(tmp_path, 15 * DAY, queries)
    assert unknown["data"]["result"] == []
    assert selector["data"]["result"][0]["metric"]["__name__"] == "node_cpu_hourly_cost"
    assert "__name__" not in present["data"]["result"][0]["metric"]
    assert present["data"]["result"][0]["values"] == [[TODAY - HOUR, "1"], [TODAY, "1"]]


def test_range_query_refusals_read_like_prometheus(tmp_path):
    base = {"query": "up", "start": str(TODAY - DAY), "end": str(TODAY), "step": "3600"}
    answers, _ = query_prometheus(
        tmp_path,
        15 * DAY,
        [
            ("GET", "/api/v1/query_range", {**base, "step": "0"}),
            ("GET", "/api/v1/query_range", {**base, "end": str(TODAY - 2 * DAY)}),
            ("GET", "/api/v1/query_range", {**base, "start": "soon"}),
            ("GET", "/api/v1/query_range", {**base, "step": "1", "start": str(TODAY - 11_001)}),
            ("GET", "/api/v1/query_range", {**base, "step": "1", "start": str(TODAY - 11_000)}),
            ("GET", "/api/v1/query_range", {**base, "query": "rate(up[5m])"}),
            ("POST", "/api/v1/query_range", base),
        ],
    )
    statuses = [status for status, _ in answers]
    assert statuses == [400, 400, 400, 400, 200, 400, 200]
    assert "zero or negative query resolution step" in answers[0][1]["error"]
    assert "end timestamp must not be before start time" in answers[1][1]["error"]
    assert 'cannot parse "soon" to a valid timestamp' in answers[2][1]["error"]
    assert "exceeded maximum resolution of 11,000 points" in answers[3][1]["error"]
    assert len(answers[4][1]["data"]["result"][0]["values"]) == 11_001
    assert "does not evaluate 'rate(up[5m])'" in answers[5][1]["error"]


def test_query_faults_and_a_reported_size_limit(tmp_path):
    query = [("GET", "/api/v1/query_range", {"query": "up", "start": "0", "end": "1", "step": "1"})]
    [(status, body)], _ = query_prometheus(tmp_path, 15 * DAY, query, {"prometheus_http_status": 503})
    assert status == 503 and body["status"] == "error"
    [(status, body)], _ = query_prometheus(tmp_path, 15 * DAY, query, {"prometheus_body": '{"status": "succ'})
    assert status == 200 and body == '{"status": "succ'
    answers, _ = query_prometheus(
        tmp_path,
        15 * DAY,
        [("GET", "/api/v1/status/runtimeinfo", {}), ("GET", "/api/v1/status/flags", {})],
        size="10GiB",
    )
    assert answers[0][1]["data"]["storageRetention"] == "15d or 10GiB"
    assert answers[1][1]["data"]["storage.tsdb.retention.size"] == "10GiB"
    with pytest.raises(ValueError, match="expected 'S,E'"):
        Faults().update({"prometheus_gap": ["yesterday"]})
    with pytest.raises(ValueError, match="the end must be after the start"):
        Faults().update({"prometheus_gap": ["20,10"]})
