"""The simulated Prometheus over real sockets: retention endpoints and the data cutoff."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubecost_sim.prometheus import Prometheus, flag_duration, prometheus_duration
from kubecost_sim.requestlog import RequestLog

NOW = 1673346600.0  # 2023-01-10T10:30:00Z
DAY = 86400


def query_prometheus(tmp_path, retention_seconds, requests):
    """Send (method, path, params) requests; return [(status, body)] and the request log lines."""
    log_path = tmp_path / "requests.jsonl"
    prometheus = Prometheus(retention_seconds, RequestLog(log_path), now=lambda: NOW)

    async def scenario():
        answers = []
        async with TestClient(TestServer(prometheus.app(), host="127.0.0.1", port=0)) as client:
            for method, path, params in requests:
                response = await client.request(method, path, params=params)
                body = await response.text()
                is_json = response.content_type == "application/json"
                answers.append((response.status, json.loads(body) if is_json else body))
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
