"""The simulated cost-model over real sockets: repair API, background repairs, faults, status."""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient, TestServer
from kubecost_sim.costmodel import CostModel
from kubecost_sim.etlgen import generate, set_file_path
from kubecost_sim.faults import Faults
from kubecost_sim.requestlog import RequestLog

from .test_loglines import PATTERNS

DAY = 86400
NOW = datetime(2023, 1, 10, 10, 30, tzinfo=UTC).timestamp()  # hourly store: 2023-01-08T11:00 onwards
RETENTION_DAYS = 7  # Prometheus cutoff: 2023-01-03T10:30, so days from 2023-01-04 can be rebuilt
DEADLINE_SECONDS = 10


def day(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())


class Harness:
    """A cost-model on a generated ETL tree, with its log and pod restarts captured."""

    def __init__(self, tmp_path):
        self.etl_dir = tmp_path / "etl"
        generate(self.etl_dir, days=15, hourly_hours=49, file_bytes=4096, seed=1, now=NOW)
        self.request_log_path = tmp_path / "requests.jsonl"
        self.faults = Faults()
        self.lines: list[str] = []
        self.line_times: list[float] = []
        self.restarts = 0
        self._line_logged = asyncio.Event()
        self.costmodel = CostModel(
            self.etl_dir,
            self.faults,
            log=self._log,
            restart_pod=self._restart_pod,
            request_log=RequestLog(self.request_log_path),
            prometheus_retention_seconds=RETENTION_DAYS * DAY,
            now=lambda: NOW,
        )

    def _log(self, line: str) -> None:
        self.lines.append(line)
        self.line_times.append(time.monotonic())
        self._line_logged.set()

    def _restart_pod(self) -> None:
        self.restarts += 1
        self.costmodel.on_pod_restart()

    async def wait_for_lines(self, predicate) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not predicate(self.lines):
            self._line_logged.clear()
            await asyncio.wait_for(self._line_logged.wait(), deadline - time.monotonic())

    async def wait_for_build_lines(self, count: int) -> None:
        await self.wait_for_lines(lambda lines: sum(" build: completed " in line for line in lines) >= count)

    def set_file(self, pipeline: str, resolution: str, start: int):
        return set_file_path(
            self.etl_dir, pipeline, resolution, start, start + (DAY if resolution == "1d" else 3600)
        )

    def snapshot(self, pipeline: str, resolution: str, starts) -> dict:
        return {
            start: (
                self.set_file(pipeline, resolution, start).read_bytes(),
                self.set_file(pipeline, resolution, start).stat().st_mtime,
            )
            for start in starts
        }


def run(scenario):
    asyncio.run(scenario())


@asynccontextmanager
async def serving(app):
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


def messages(lines):
    return [PATTERNS["line"].match(line)["message"] for line in lines]


def test_three_day_repair_inside_retention(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        days = [day("2023-01-05"), day("2023-01-06"), day("2023-01-07")]
        before = harness.snapshot("assets", "1d", days)
        untouched_before = harness.snapshot("assets", "1d", [day("2023-01-04"), day("2023-01-08")])
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get(
                "/etl/asset/repair", params={"window": "2023-01-05T00:00:00Z,2023-01-08T00:00:00Z"}
            )
            assert response.status == 200
            assert await response.text() == '{"code":200,"data":"Repairing Asset ETL"}'
            await harness.wait_for_build_lines(1)
            await harness.costmodel.wait_idle()

        found = messages(harness.lines)
        assert re.fullmatch(
            r"ETL: Asset\[1d\]: ETLStore\.Repair\[[A-Za-z]{5}\]: "
            r"repairing 2023-01-05 00:00:00 \+0000 UTC, 2023-01-08 00:00:00 \+0000 UTC",
            found[0],
        )
        assert [PATTERNS["progress"].match(message) is not None for message in found[1:4]] == [True] * 3
        assert [message.split(" aggregated ")[1].split(")")[0] + ")" for message in found[1:4]] == [
            "[2023-01-05T00:00:00+0000, 2023-01-06T00:00:00+0000)",
            "[2023-01-06T00:00:00+0000, 2023-01-07T00:00:00+0000)",
            "[2023-01-07T00:00:00+0000, 2023-01-08T00:00:00+0000)",
        ]
        assert PATTERNS["build"].match(found[4]) and found[4].endswith("(100.0% complete)")
        assert len(found) == 5  # the window starts before the hourly store: no [1h] lines

        after = harness.snapshot("assets", "1d", days)
        for start in days:
            data, mtime = after[start]
            assert data != before[start][0] and data[:4] == b"BGST"
            assert mtime == NOW > before[start][1]
        assert harness.snapshot("assets", "1d", [day("2023-01-04"), day("2023-01-08")]) == untouched_before

        logged = [json.loads(line) for line in harness.request_log_path.read_text().splitlines()]
        assert logged[0]["method"] == "GET" and logged[0]["path"] == "/etl/asset/repair"
        assert logged[0]["query"] == {"window": "2023-01-05T00:00:00Z,2023-01-08T00:00:00Z"}

    run(scenario)


def test_window_inside_hourly_store_repairs_1h_too(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        hours = [day("2023-01-10") + hour * 3600 for hour in (6, 7, 8)]
        before = harness.snapshot("allocations", "1h", hours)
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get(
                "/etl/allocation/repair", params={"window": "2023-01-10T06:00:00Z,2023-01-10T09:00:00Z"}
            )
            assert await response.json() == {"code": 200, "data": "Repairing Allocation ETL"}
            await harness.wait_for_build_lines(2)

        found = messages(harness.lines)
        hourly = [message for message in found if message.startswith("ETL: Allocation[1h]: ")]
        assert len(hourly) == 5
        assert hourly[0].endswith("repairing 2023-01-10 06:00:00 +0000 UTC, 2023-01-10 09:00:00 +0000 UTC")
        assert all(
            PATTERNS["progress"].match(message) and "AggregatedStoreDriver[" in message
            for message in hourly[1:4]
        )
        assert "[2023-01-10T08:00:00+0000, 2023-01-10T09:00:00+0000)" in hourly[3]
        assert PATTERNS["build"].match(hourly[4])
        after = harness.snapshot("allocations", "1h", hours)
        assert all(after[hour][0] != before[hour][0] and after[hour][1] == NOW for hour in hours)

    run(scenario)


def test_days_outside_prometheus_retention_are_not_touched(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        lost_days = [day("2023-01-02"), day("2023-01-03")]
        before = harness.snapshot("assets", "1d", lost_days)
        async with serving(harness.costmodel.model_app()) as client:
            await client.get(
                "/etl/asset/repair", params={"window": "2023-01-02T00:00:00Z,2023-01-05T00:00:00Z"}
            )
            await harness.wait_for_build_lines(1)

        found = messages(harness.lines)
        assert found[1:3] == [
            "ETL: Asset[1d]: Repair: error: cannot repair "
            "[2023-01-02T00:00:00+0000, 2023-01-03T00:00:00+0000): "
            "coverage is [2023-01-04T00:00:00+0000, 2023-01-11T00:00:00+0000)",
            "ETL: Asset[1d]: Repair: error: cannot repair "
            "[2023-01-03T00:00:00+0000, 2023-01-04T00:00:00+0000): "
            "coverage is [2023-01-04T00:00:00+0000, 2023-01-11T00:00:00+0000)",
        ]
        assert PATTERNS["progress"].match(found[3]) and found[4].endswith("(33.3% complete)")
        assert harness.snapshot("assets", "1d", lost_days) == before
        assert harness.set_file("assets", "1d", day("2023-01-04")).stat().st_mtime == NOW

    run(scenario)


def test_cloud_steps_bodies_and_provider(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        window = {"window": "2023-01-05T00:00:00Z,2023-01-07T00:00:00Z"}
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get("/etl/cloudUsage/repair", params=window)
            assert await response.text() == (
                '{"code":200,"data":"Cloud Usage Repair process has begun for '
                '[2023-01-05T00:00:00+0000, 2023-01-07T00:00:00+0000) for all providers"}'
            )
            response = await client.get(
                "/etl/asset/reconciliation/repair", params={**window, "provider": "aws-123456789012"}
            )
            assert (await response.json())["data"] == (
                "Reconciliation Repair process has begun for "
                "[2023-01-05T00:00:00+0000, 2023-01-07T00:00:00+0000) for provider aws-123456789012"
            )
            response = await client.get("/cloudCost/repair", params=window)
            assert await response.text() == '{"code":200,"data":"Rebuilding Cloud Usage For All Providers"}'
            response = await client.get("/etl/cloudUsage/repair", params={**window, "provider": "gcp-nope"})
            assert response.status == 400
            assert await response.json() == {
                "code": 400,
                "message": "Invalid parameter: provider: no cloud integration with key 'gcp-nope'",
            }
            await harness.wait_for_build_lines(3)

        cloud_usage = [
            m for m in messages(harness.lines) if m.startswith("ETL: CloudUsage[aws-123456789012]: ")
        ]
        assert sum(bool(PATTERNS["cloud_query"].match(m)) for m in cloud_usage) == 2
        assert PATTERNS["cloud_coverage"].match(cloud_usage[-1])

    run(scenario)


def test_bad_or_missing_window_is_400(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get(
                "/etl/asset/repair", params={"window": "2023-01-05T00:00:00.5Z,2023-01-08T00:00:00Z"}
            )
            assert response.status == 400
            assert await response.text() == (
                '{"code":400,"message":"Invalid parameter: window: illegal window: '
                '2023-01-05T00:00:00.5Z,2023-01-08T00:00:00Z"}'
            )
            response = await client.get("/etl/allocation/repair")
            assert response.status == 400
            assert (await response.json())["message"] == "Invalid parameter: window: illegal window: "
            response = await client.get(
                "/etl/asset/repair", params={"window": "2023-01-08T00:00:00Z,2023-01-05T00:00:00Z"}
            )
            assert response.status == 400 and "end before start" in (await response.json())["message"]
        assert harness.lines == []

    run(scenario)


def test_frontend_serves_the_same_under_model(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        async with serving(harness.costmodel.frontend_app()) as client:
            response = await client.get("/model/etl/asset/repair", params={"window": "1d"})
            assert await response.text() == '{"code":200,"data":"Repairing Asset ETL"}'
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/model/healthz")).status == 200
            assert (await client.get("/etl/asset/repair", params={"window": "1d"})).status == 404
            status = await (await client.get("/model/etl/status")).json()
            assert status["code"] == 200 and "asset" in status["data"]
            await harness.wait_for_build_lines(2)  # "1d" is today: inside the hourly store as well

    run(scenario)


def test_http_500_fault_counts_down(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        harness.faults.update({"repair_http_500": ["asset"], "repair_http_500_times": 2})
        window = {"window": "2023-01-06T00:00:00Z,2023-01-07T00:00:00Z"}
        async with serving(harness.costmodel.model_app()) as client:
            statuses = []
            for _ in range(3):
                response = await client.get("/etl/asset/repair", params=window)
                statuses.append(response.status)
                if response.status == 500:
                    body = await response.json()
                    assert body["code"] == 500 and body["message"].startswith("Internal Server Error")
            assert statuses == [500, 500, 200]
            assert (await client.get("/etl/allocation/repair", params=window)).status == 200
            await harness.wait_for_build_lines(2)
            harness.faults.update({"repair_http_500": ["allocation"], "repair_http_500_times": None})
            assert [(await client.get("/etl/allocation/repair", params=window)).status for _ in range(3)] == [
                500
            ] * 3

    run(scenario)


def test_fail_step_fault_logs_failure_and_stops(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        harness.faults.update({"repair_fail_step": "allocation"})
        days = [day("2023-01-05"), day("2023-01-06")]
        before = harness.snapshot("allocations", "1d", days)
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get(
                "/etl/allocation/repair", params={"window": "2023-01-05T00:00:00Z,2023-01-07T00:00:00Z"}
            )
            assert response.status == 200  # the failure only shows in the log
            await harness.wait_for_lines(lambda lines: any(" ERR " in line for line in lines))
            await harness.costmodel.wait_idle()

        assert len(harness.lines) == 2 and PATTERNS["merge_range"].search(harness.lines[1])
        assert harness.snapshot("allocations", "1d", days) == before

    run(scenario)


def test_restart_fault_restarts_pod_mid_step_and_disarms(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        harness.faults.update({"restart_during_step": "asset"})
        window = {"window": "2023-01-04T00:00:00Z,2023-01-09T00:00:00Z"}
        async with serving(harness.costmodel.model_app()) as client:
            await client.get("/etl/asset/repair", params=window)
            await harness.wait_for_lines(lambda lines: harness.restarts > 0)
            await harness.costmodel.wait_idle()
            assert harness.restarts == 1 and harness.faults.restart_during_step is None
            found = messages(harness.lines)
            assert len(found) == 3 and all(PATTERNS["progress"].match(message) for message in found[1:])
            assert harness.set_file("assets", "1d", day("2023-01-06")).stat().st_mtime < NOW  # never reached

            harness.lines.clear()
            await client.get("/etl/asset/repair", params=window)
            await harness.wait_for_build_lines(1)
            assert len(harness.lines) == 7 and harness.restarts == 1

    run(scenario)


def test_slow_repair_paces_lines_and_is_cancelled_by_pod_restart(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        harness.faults.update({"repair_seconds_per_day": 0.1})
        async with serving(harness.costmodel.model_app()) as client:
            await client.get(
                "/etl/asset/repair", params={"window": "2023-01-04T00:00:00Z,2023-01-07T00:00:00Z"}
            )
            await harness.wait_for_build_lines(1)
            assert harness.line_times[-2] - harness.line_times[0] >= 0.25  # three paced days

            harness.lines.clear()
            harness.faults.update({"repair_seconds_per_day": 0.05})
            await client.get(
                "/etl/allocation/repair", params={"window": "2023-01-04T00:00:00Z,2023-01-09T00:00:00Z"}
            )
            await harness.wait_for_lines(lambda lines: len(lines) >= 2)
            status = await (await client.get("/etl/status")).json()
            assert status["data"]["allocation"]["1d"]["isRepairing"] is True
            harness.costmodel.on_pod_restart()
            logged_before_restart = len(harness.lines)
            await harness.costmodel.wait_idle()
            assert len(harness.lines) == logged_before_restart < 7
            status = await (await client.get("/etl/status")).json()
            assert status["data"]["allocation"]["1d"]["isRepairing"] is False

    run(scenario)


def test_status_reports_files_on_disk(tmp_path):
    async def scenario():
        harness = Harness(tmp_path)
        async with serving(harness.costmodel.model_app()) as client:
            response = await client.get("/etl/status")
            body = await response.json()
        daily = body["data"]["asset"]["1d"]
        assert daily["coverage"] == {"start": "2022-12-27T00:00:00Z", "end": "2023-01-11T00:00:00Z"}
        assert daily["progress"] == 1.0 and daily["resolution"] == "24h0m0s" and daily["isRepairing"] is False
        assert (
            daily["backup"]["fileCount"] == 15
            and daily["backup"]["path"] == "/var/configs/db/etl/bingen/assets/1d"
        )
        assert daily["backup"]["files"][0] == {
            "name": "1672099200-1672185600",
            "size": f"{harness.set_file('assets', '1d', 1672099200).stat().st_size} B",
            "lastModified": "2022-12-28T00:00:00Z",
            "isRepairing": False,
        }
        assert body["data"]["allocation"]["1h"]["backup"]["fileCount"] == 49
        assert set(body["data"]["cloud"]) == {"aws-123456789012"}

    run(scenario)
