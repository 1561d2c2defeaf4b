"""Log line formats: each pattern matches Kubecost's documented example and the simulator's line."""

import asyncio
import random
import re
from datetime import UTC, datetime

import pytest
from kubecost_sim.loglines import go_duration, go_time, log_line, rfc3339_nano, run_id, window_text
from kubecost_sim.repair import RepairContext, RepairRequest, RepairStopped, run_repair

_W = r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000, \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000\)"
_T = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC"
_ID = r"\[[A-Za-z]{5}\]"
_D = r"\d+(\.\d+)?(ns|µs|ms|s)"
_STORE = r"(Asset|Allocation)\[(1d|1h)\]"
_KEY = r"\[[^\]]+\]"

# Patterns a log-matching sensor can rely on (messages, without the time and level).
PATTERNS = {
    "line": re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z (TRC|DBG|INF|WRN|ERR|FTL|PNC) (?P<message>.+)$"
    ),
    "repair_start": re.compile(rf"^ETL: {_STORE}: ETLStore\.Repair{_ID}: repairing {_T}, {_T}$"),
    "progress": re.compile(
        rf"^ETL: {_STORE}: (AggregatedStore\.Run|AggregatedStoreDriver){_ID}: run: aggregated {_W} "
        rf"from \d+ to \d+ in {_D}$"
    ),
    "build": re.compile(
        rf"^ETL: {_STORE}: ETLStore{_ID}: build: completed {_W} in {_D}: coverage {_W} \(\d+\.\d% complete\)$"
    ),
    "cannot_repair": re.compile(rf"^ETL: {_STORE}: Repair: error: cannot repair {_W}: coverage is {_W}$"),
    "merge_range": re.compile(rf"MergeRange error: boundary error: requested {_W}; supported {_W}$"),
    "cloud_query": re.compile(rf"^ETL: CloudUsage{_KEY}: Build{_ID}: QueryCloudUsage {_W}$"),
    "cloud_coverage": re.compile(
        rf"^ETL: CloudUsage{_KEY}: Build{_ID}: .*coverage {_W} \(\d+\.\d complete\)$"
    ),
}

# From Kubecost's repair doc and troubleshooting guide ("[...)" filled in with real windows).
DOCUMENTED_EXAMPLES = {
    "line": "2023-05-24T19:41:34.57Z INF ETL: Asset[1d] is 100.0% complete",
    "repair_start": "ETL: Asset[1d]: ETLStore.Repair[cfDKJ]: repairing 2023-01-01 00:00:00 +0000 UTC, "
    "2023-01-04 00:00:00 +0000 UTC",
    "progress": "ETL: Asset[1d]: AggregatedStore.Run[fvkKR]: run: aggregated [2023-01-01T00:00:00+0000, "
    "2023-01-02T00:00:00+0000) from 19 to 3 in 68.417µs",
    "build": "ETL: Allocation[1d]: ETLStore[EyPBs]: build: completed [2023-01-01T00:00:00+0000, "
    "2023-01-04T00:00:00+0000) in 26ms: coverage [2022-10-05T00:00:00+0000, 2023-01-04T00:00:00+0000) "
    "(100.0% complete)",
    "cannot_repair": "ETL: Asset[1h]: Repair: error: cannot repair [2022-11-05T00:00:00+0000, "
    "2022-11-06T00:00:00+0000): coverage is [2022-12-01T21:00:00+0000, 2022-12-02T23:00:00+0000)",
    "merge_range": "ETL: CloudAsset[abc]: Build[defgh]: MergeRange error: boundary error: requested "
    "[2022-03-26T00:00:00+0000, 2022-04-02T00:00:00+0000); supported [2022-03-29T00:00:00+0000, "
    "2022-04-30T00:00:00+0000)",
    "cloud_query": "ETL: CloudUsage[aws-1]: Build[XPQMa]: QueryCloudUsage [2023-01-01T00:00:00+0000, "
    "2023-01-02T00:00:00+0000)",
    "cloud_coverage": "ETL: CloudUsage[aws-1]: Build[XPQMa]: coverage [2023-01-01T00:00:00+0000, "
    "2023-01-02T00:00:00+0000) (7.7 complete)",
}

NOW = datetime(2023, 1, 10, 10, 30, tzinfo=UTC).timestamp()
DAY = 86400


@pytest.mark.parametrize("name", sorted(DOCUMENTED_EXAMPLES))
def test_patterns_match_documented_examples(name):
    assert PATTERNS[name].search(DOCUMENTED_EXAMPLES[name])


def test_formatting_helpers():
    assert log_line(1684957294.57, "INF", "hello") == "2023-05-24T19:41:34.57Z INF hello"
    assert rfc3339_nano(1672531200) == "2023-01-01T00:00:00Z"
    assert go_time(1672531200) == "2023-01-01 00:00:00 +0000 UTC"
    assert window_text(1672531200, 1672617600) == "[2023-01-01T00:00:00+0000, 2023-01-02T00:00:00+0000)"
    assert [go_duration(s) for s in (68.417e-6, 0.026, 1.5, 500e-9, 0.001, 2.0)] == [
        "68.417µs",
        "26ms",
        "1.5s",
        "500ns",
        "1ms",
        "2s",
    ]
    assert re.fullmatch(r"[A-Za-z]{5}", run_id(random.Random(1)))


def run_step(tmp_path, step, start, end, fail=False, restart=False, retention_days=7, hourly_hours=49):
    """Run one repair step directly (no HTTP) and return its log lines."""
    lines = []
    restarts = []

    def emit(level, message):
        if restarts:
            raise RepairStopped
        lines.append(log_line(NOW, level, message))

    request = RepairRequest(step, start, end, ("aws-1",), fail, restart, seconds_per_day=0.0)
    context = RepairContext(
        etl_dir=tmp_path,
        emit=emit,
        restart_pod=lambda: restarts.append(True),
        now=lambda: NOW,
        prometheus_retention_seconds=retention_days * DAY,
        hourly_hours=hourly_hours,
        repairing=set(),
        rng=random.Random(5),
    )
    asyncio.run(run_repair(request, context))
    return lines


def messages(lines):
    matches = [PATTERNS["line"].match(line) for line in lines]
    assert all(matches), lines
    return [match["message"] for match in matches]


def kinds(lines):
    """The name of the pattern each message matches (exactly one)."""
    result = []
    for message in messages(lines):
        names = [name for name, pattern in PATTERNS.items() if name != "line" and pattern.search(message)]
        assert len(names) == 1, (message, names)
        result.append(names[0])
    return result


START = int(datetime(2023, 1, 5, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("step", ["asset", "allocation"])
def test_store_repair_lines(tmp_path, step):
    lines = run_step(tmp_path, step, START, START + 3 * DAY)
    assert kinds(lines) == ["repair_start", "progress", "progress", "progress", "build"]
    label = "Asset" if step == "asset" else "Allocation"
    assert all(message.startswith(f"ETL: {label}[1d]: ") for message in messages(lines))


def test_store_repair_outside_retention_lines(tmp_path):
    lines = run_step(tmp_path, "asset", START - 3 * DAY, START, retention_days=7)
    # the Prometheus cutoff is 2023-01-03T10:30, so the 2nd and the 3rd of January cannot be rebuilt
    assert kinds(lines) == ["repair_start", "cannot_repair", "cannot_repair", "progress", "build"]
    assert messages(lines)[-1].endswith("(33.3% complete)")
    assert all(line.split()[1] == "WRN" for line in lines if "cannot repair" in line)


def test_cloud_usage_lines(tmp_path):
    lines = run_step(tmp_path, "cloudUsage", START, START + 2 * DAY)
    assert messages(lines)[0].startswith("ETL: CloudUsage[aws-1]: CloudUsageStore.Repair[")
    assert kinds(lines[1:]) == ["cloud_query", "cloud_query", "cloud_coverage"]


@pytest.mark.parametrize(
    ("step", "prefix"),
    [("reconciliation", "ETL: Reconciliation[aws-1]: "), ("cloudCost", "ETL: CloudCost[aws-1]: ")],
)
def test_simulated_cloud_step_lines(tmp_path, step, prefix):
    found = messages(run_step(tmp_path, step, START, START + 2 * DAY))
    assert len(found) == 4 and all(message.startswith(prefix) for message in found)
    assert re.search(rf"Store\.Repair{_ID}: repairing {_T}, {_T}$", found[0])
    assert all(re.search(rf"{_W}: \d+ ", message) for message in found[1:3])
    assert re.search(rf"build: completed {_W} in {_D}: coverage {_W} \(100\.0% complete\)$", found[3])


@pytest.mark.parametrize("step", ["asset", "allocation", "cloudUsage", "reconciliation", "cloudCost"])
def test_failing_step_logs_merge_range_error_and_stops(tmp_path, step):
    lines = run_step(tmp_path, step, START, START + 3 * DAY, fail=True)
    assert len(lines) == 2
    assert lines[1].split()[1] == "ERR" and PATTERNS["merge_range"].search(lines[1])


def test_hourly_store_lines(tmp_path):
    today = int(NOW) - int(NOW) % DAY
    lines = run_step(tmp_path, "asset", today + 6 * 3600, today + 9 * 3600)
    assert kinds(lines) == ["repair_start", "progress", "build"] + ["repair_start"] + ["progress"] * 3 + [
        "build"
    ]
    assert sum("Asset[1h]" in line for line in lines) == 5
