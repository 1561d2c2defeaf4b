"""Log lines, step progress and the log cursor, on Kubecost's documented lines (pure logic)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from kubecost_etl.etl.windows import RepairWindow
from kubecost_etl.repair.log_matching import (
    NONE,
    OPTIONAL,
    REQUIRED,
    LogCursor,
    StepTracker,
    expectation,
    hourly_mode,
    parse_k8s_timestamp,
    read_message,
    since_time,
    split_lines,
)
from kubecost_etl.repair.log_watch import MAX_LIMIT_BYTES, PodState, RepairLogWatch
from kubecost_etl.repair.profiles import PROFILES, get_profile

V1 = get_profile("v1")
NOW = int(datetime(2023, 1, 4, 10, 30, tzinfo=UTC).timestamp())


def t(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def w(start: str, end: str) -> str:
    """Kubecost's window rendering."""
    fmt = "%Y-%m-%dT%H:%M:%S+0000"
    return f"[{datetime.fromisoformat(start).strftime(fmt)}, {datetime.fromisoformat(end).strftime(fmt)})"


def expected(
    step: str,
    days: list[str],
    hours: list[int] | None = None,
    hourly: str = NONE,
    keys: list[str] | None = None,
    profile: str = "v1",
) -> dict:
    return {
        "profile": profile,
        "step": step,
        "days": [t(d) for d in days],
        "hours": hours or [],
        "hourly": hourly,
        "provider_keys": keys,
    }


DAYS = ["2023-01-01", "2023-01-02", "2023-01-03"]
# The product documents' Asset example, verbatim apart from the time prefix.
DOC_ASSET = [
    "ETL: Asset[1d]: ETLStore.Repair[cfDKJ]: repairing 2023-01-01 00:00:00 +0000 UTC, "
    "2023-01-04 00:00:00 +0000 UTC",
    *(
        f"ETL: Asset[1d]: AggregatedStore.Run[fvkKR]: run: aggregated {w(a, b)} from 19 to 3 in 68.417µs"
        for a, b in (("2023-01-01", "2023-01-02"), ("2023-01-02", "2023-01-03"), ("2023-01-03", "2023-01-04"))
    ),
]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "2023-05-24T19:41:34.57Z INF ETL: Asset[1d] is 100.0% complete",
            "ETL: Asset[1d] is 100.0% complete",
        ),
        ("INF ETL: Asset[1d]: x", "ETL: Asset[1d]: x"),
        ("WRN ETL: Asset[1h]: Repair: error: cannot repair", "ETL: Asset[1h]: Repair: error: cannot repair"),
        ("I0228 19:52:21.446753       1 log.go:62] [Info] ETL: Asset[1d]: x", "ETL: Asset[1d]: x"),
        (
            "E0228 19:52:21.446753 1 log.go:62] MergeRange error: boundary error",
            "MergeRange error: boundary error",
        ),
        ('{"level":"info","time":"2023-05-24T19:41:34Z","message":"ETL: Asset[1d]: x"}', "ETL: Asset[1d]: x"),
        ('{"level":"info","msg":"ETL: Asset[1d]: x"}', "ETL: Asset[1d]: x"),
        ("[Error] ETL: CloudAsset[x]: no framing at all", "[Error] ETL: CloudAsset[x]: no framing at all"),
    ],
)
def test_messages_are_read_from_plain_glog_and_json_lines(line, message):
    assert read_message(line) == message


def test_documented_asset_lines_complete_a_daily_only_repair():
    tracker = StepTracker(V1, expected("asset", DAYS))
    for message in DOC_ASSET:
        assert tracker.feed(message) is None
    assert tracker.done and tracker.days_done() == 3
    assert tracker.summary()[0]["announced"] == ("2023-01-01 00:00:00 +0000", "2023-01-04 00:00:00 +0000")


def test_older_allocation_lines_and_a_build_line_count_as_progress():
    tracker = StepTracker(V1, expected("allocation", DAYS))
    tracker.feed(
        "ETL: Allocation[1d]: ETLStore.Repair[rptgQ]: repairing 2023-01-01 00:00:00 +0000 UTC, "
        "2023-01-04 00:00:00 +0000 UTC"
    )
    tracker.feed(
        f"ETL: Allocation[ETL[allocations][1d]]: Repair[rptgQ]: starting {w('2023-01-01', '2023-01-02')}"
    )
    assert not tracker.done and tracker.days_done() == 1
    tracker.feed(
        f"ETL: Allocation[1d]: ETLStore[EyPBs]: build: completed {w('2023-01-01', '2023-01-04')} in 26ms: "
        f"coverage {w('2022-10-05', '2023-01-04')} (100.0% complete)"
    )
    assert tracker.done


def test_progress_before_the_step_starts_belongs_to_another_run():
    tracker = StepTracker(V1, expected("asset", DAYS))
    for message in DOC_ASSET[1:]:  # periodic builds log the same progress lines
        tracker.feed(message)
    assert not tracker.done and "Asset[1d] not started" in tracker.missing()


def test_a_daily_build_line_does_not_finish_a_step_whose_hourly_pass_is_due():
    hours = list(range(t("2023-01-03T00:00"), t("2023-01-03T03:00"), 3600))
    tracker = StepTracker(V1, expected("asset", ["2023-01-03"], hours, REQUIRED))
    tracker.feed(
        "ETL: Asset[1d]: ETLStore.Repair[aaaaa]: repairing 2023-01-03 00:00:00 +0000 UTC, "
        "2023-01-04 00:00:00 +0000 UTC"
    )
    tracker.feed(
        f"ETL: Asset[1d]: ETLStore[bbbbb]: build: completed {w('2023-01-03', '2023-01-04')} in 5ms: "
        f"coverage {w('2023-01-01', '2023-01-04')} (100.0% complete)"
    )
    assert not tracker.done and "Asset[1h] not started, 0/3 done" in tracker.missing()
    tracker.feed(
        "ETL: Asset[1h]: ETLStore.Repair[ccccc]: repairing 2023-01-03 00:00:00 +0000 UTC, "
        "2023-01-03 03:00:00 +0000 UTC"
    )
    for hour in hours:
        start, end = datetime.fromtimestamp(hour, UTC), datetime.fromtimestamp(hour + 3600, UTC)
        assert not tracker.done
        tracker.feed(
            f"ETL: Asset[1h]: AggregatedStore.Run[ddddd]: run: aggregated "
            f"{w(start.isoformat()[:19], end.isoformat()[:19])} from 9 to 2 in 1ms"
        )
    assert tracker.done


def test_an_optional_hourly_pass_is_followed_only_once_it_starts():
    hours = [t("2023-01-03T00:00")]
    start_1d = (
        "ETL: Asset[1d]: ETLStore.Repair[a]: repairing 2023-01-03 00:00:00 +0000 UTC, "
        "2023-01-04 00:00:00 +0000 UTC"
    )
    day = (
        f"ETL: Asset[1d]: AggregatedStore.Run[b]: run: aggregated {w('2023-01-03', '2023-01-04')} "
        "from 1 to 1 in 1ms"
    )
    quiet = StepTracker(V1, expected("asset", ["2023-01-03"], hours, OPTIONAL))
    quiet.feed(start_1d)
    quiet.feed(day)
    assert quiet.done
    started = StepTracker(V1, expected("asset", ["2023-01-03"], hours, OPTIONAL))
    started.feed(start_1d)
    started.feed(
        "ETL: Asset[1h]: ETLStore.Repair[c]: repairing 2023-01-03 00:00:00 +0000 UTC, "
        "2023-01-03 01:00:00 +0000 UTC"
    )
    started.feed(day)
    assert not started.done


def test_hourly_mode_follows_the_hourly_store_and_its_moving_edge():
    oldest_hour = t("2023-01-02T10:00")  # 49 hours ending with the hour in progress (10:00-11:00 on the 4th)
    assert hourly_mode(oldest_hour + 3600, NOW, 49) == REQUIRED
    assert hourly_mode(oldest_hour, NOW, 49) == OPTIONAL
    assert hourly_mode(oldest_hour - 1, NOW, 49) == NONE


def test_expectation_covers_the_window_and_stops_with_the_period_in_progress():
    window = RepairWindow("today", t("2023-01-04"), t("2023-01-05"))
    asset = expectation(V1, "asset", window, NOW, 49, None).as_dict()
    assert asset["days"] == [t("2023-01-04")]
    assert asset["hours"] == list(range(t("2023-01-04"), t("2023-01-04T11:00"), 3600))
    assert asset["hourly"] == REQUIRED and asset["provider_keys"] is None
    cloud_window = RepairWindow("x", t("2022-12-20"), t("2022-12-22"))
    cloud = expectation(V1, "cloudUsage", cloud_window, NOW, 49, ["k"]).as_dict()
    assert (
        cloud["days"] == [t("2022-12-20"), t("2022-12-21")]
        and cloud["hours"] == []
        and cloud["hourly"] == NONE
    )
    assert cloud["provider_keys"] == ["k"]


def test_keyed_steps_wait_for_every_named_integration():
    tracker = StepTracker(V1, expected("cloudUsage", DAYS[:1], keys=["aws-1", "gcp-2"]))
    for key in ("aws-1", "other"):
        tracker.feed(f"ETL: CloudUsage[{key}]: Build[XPQMa]: QueryCloudUsage {w('2023-01-01', '2023-01-02')}")
    assert not tracker.done and "CloudUsage[gcp-2] not started" in tracker.missing()
    tracker.feed(
        f"ETL: CloudUsage[gcp-2]: Build[YPQMa]: build: completed {w('2023-01-01', '2023-01-02')} in 2s: "
        f"coverage {w('2023-01-01', '2023-01-02')} (7.7 complete)"
    )
    assert tracker.done


def test_keyed_steps_learn_integrations_from_the_log_when_none_are_named():
    tracker = StepTracker(V1, expected("reconciliation", DAYS[:1]))
    assert not tracker.done and "no Reconciliation pass seen" in tracker.missing()
    tracker.feed(
        f"ETL: Reconciliation[aws-1]: Reconcile[abcde]: reconciled {w('2023-01-01', '2023-01-02')}: "
        "17 of 19 assets matched in 3ms"
    )
    assert tracker.done


def test_v2_cloud_cost_lines():
    tracker = StepTracker(PROFILES["v2"], expected("cloudCost", DAYS[:1], keys=["aws-1"], profile="v2"))
    tracker.feed(
        f"ETL: CloudCost[aws-1]: CloudCostIngestor[abcde]: ingested {w('2023-01-01', '2023-01-02')}: "
        "42 cloud costs in 3ms"
    )
    assert tracker.done


@pytest.mark.parametrize(
    "message",
    [
        "ETL: Asset[1h]: Repair: error: cannot repair [2022-11-05T00:00:00+0000, 2022-11-06T00:00:00+0000): "
        "coverage is [2022-12-01T21:00:00+0000, 2022-12-02T23:00:00+0000)",
        "ETL: CloudAsset[abc]: Build[defgh]: MergeRange error: boundary error: requested "
        "[2022-03-26T00:00:00+0000, 2022-04-02T00:00:00+0000); supported [2022-03-29T00:00:00+0000, "
        "2022-04-30T00:00:00+0000)",
        "ETL: failed to create bucket storage: missing bucket",
    ],
)
def test_documented_failure_lines_fail_the_step(message):
    tracker = StepTracker(V1, expected("asset", DAYS))
    assert "failure during the Asset repair" in tracker.feed(message)


def test_kubernetes_timestamps_and_since_time():
    assert parse_k8s_timestamp("2023-01-01T00:00:01.5Z") == t("2023-01-01T00:00:01") * 10**9 + 500_000_000
    assert parse_k8s_timestamp("2023-01-01T00:00:01.000000007Z") % 10**9 == 7
    assert parse_k8s_timestamp("2023-01-01T00:00:01Z") == t("2023-01-01T00:00:01") * 10**9
    assert since_time(parse_k8s_timestamp("2023-01-01T00:00:01.999Z")) == "2023-01-01T00:00:01Z"
    with pytest.raises(ValueError):
        parse_k8s_timestamp("2023-01-01 00:00:01")


def line(stamp: str, text: str) -> bytes:
    return f"2023-01-04T10:00:{stamp}Z {text}\n".encode()


def test_the_cursor_returns_each_line_once_across_reads_of_the_same_second():
    cursor = LogCursor.after(line("00.1", "old") + line("00.2", "old"))
    assert cursor.since_time() == "2023-01-04T10:00:00Z"
    read = line("00.1", "old") + line("00.2", "old") + line("00.2", "twin") + line("00.3", "new")
    cursor.begin_read()
    taken = [text for ns, text in split_lines(read) if cursor.take(ns)]
    assert taken == ["twin", "new"]
    cursor.begin_read()
    assert [text for ns, text in split_lines(read + line("00.3", "twin")) if cursor.take(ns)] == ["twin"]
    assert LogCursor.from_dict(cursor.as_dict()) == cursor


POD = {"namespace": "kubecost", "name": "p", "uid": "u", "container": "cost-model", "restarts": 0}


def test_a_read_cut_by_limit_bytes_keeps_the_partial_line_for_the_next_read():
    watch = RepairLogWatch(expected("asset", DAYS), None, POD, limit_bytes=200)
    full = b"".join(line(f"0{i}.5", f"INF {m}") for i, m in enumerate(DOC_ASSET))
    assert watch.consume(full[:200]) is None and watch.more_waiting
    assert watch.log_query()["sinceTime"] == "2023-01-04T10:00:00Z"
    consumed_so_far = watch.tracker.summary()[0]["done"]
    outcome = watch.consume(full[full.index(b"\n") + 1 :])
    assert consumed_so_far < 3 and outcome.status == "done"


def test_a_line_longer_than_a_read_grows_the_next_read():
    watch = RepairLogWatch(expected("asset", DAYS), None, POD, limit_bytes=64)
    assert watch.consume(line("00.1", "x" * 500)[:64]) is None
    assert watch.limit_bytes == 128 and watch.cursor.last_ns is None


def test_a_full_read_of_old_lines_grows_the_read_then_skips_the_second():
    watch = RepairLogWatch(
        expected("asset", DAYS),
        {"last_ns": parse_k8s_timestamp("2023-01-04T10:00:00.9Z"), "at_last": 1},
        POD,
        limit_bytes=100,
    )
    burst = b"".join(line(f"00.{i}", "INF noise") for i in range(1, 10))  # one second, all seen already
    assert watch.consume(burst[:100]) is None and watch.limit_bytes == 200
    watch.limit_bytes = MAX_LIMIT_BYTES
    assert watch.consume(burst[:MAX_LIMIT_BYTES] + b"x" * (MAX_LIMIT_BYTES - len(burst))) is None
    assert watch.log_query()["sinceTime"] == "2023-01-04T10:00:01Z"  # past the burst's second


def test_a_restart_is_the_pod_replaced_or_its_container_restarted():
    watch = RepairLogWatch(expected("asset", DAYS), None, POD)
    assert watch.check_pod(PodState("u", 0)) is None
    assert "kubecost/p was replaced (a restart) during the Asset repair" in watch.check_pod(None).message
    assert (
        "was replaced" in watch.check_pod(PodState("other-uid", 0)).message
    )  # same name, new pod (StatefulSet)
    restarted = watch.check_pod(PodState("u", 1))
    assert restarted.status == "failed"
    assert "container of kubecost/p restarted during the Asset repair" in restarted.message


def test_a_log_answer_other_than_200_is_the_pod_gone_or_an_api_error():
    watch = RepairLogWatch(expected("asset", DAYS), None, POD)
    assert "kubecost/p was replaced (a restart)" in watch.read(404, b"").message  # gone since check_pod
    with pytest.raises(RuntimeError, match="pods/log answered HTTP 500: b'etcdserver: request timed out'"):
        watch.read(500, b"etcdserver: request timed out")
    assert watch.polls == 0  # neither answer was taken for log lines
    assert (
        watch.read(200, b"".join(line(f"0{i}.5", f"INF {m}") for i, m in enumerate(DOC_ASSET))).status
        == "done"
    )


def test_the_timeout_names_what_is_missing_only_once_the_deadline_has_passed():
    watch = RepairLogWatch(expected("asset", DAYS), None, POD)
    assert watch.overdue(time.time() + 60, 1) is None
    late = watch.overdue(time.time() - 1, 2.5)
    assert (
        late.status == "failed"
        and "did not finish within 2.5 minutes (repair.step_timeout_minutes)" in late.message
    )
    assert "Asset[1d] not started, 0/3 done" in late.message
