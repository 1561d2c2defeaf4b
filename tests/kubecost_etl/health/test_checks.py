"""Staleness, lost files, missing days, hourly coverage and the coverage map, at fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubecost_etl.health.checks import (
    check_pod,
    coverage_map,
    hourly_coverage,
    lost_files,
    missing_days,
    staleness,
)

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
DAY, HOUR = 86400, 3600
TODAY = int(datetime(2026, 3, 10, tzinfo=UTC).timestamp())
CURRENT_HOUR = int(datetime(2026, 3, 10, 14, tzinfo=UTC).timestamp())


def daily(pipeline: str, days_back: range) -> list[str]:
    return [f"bingen/{pipeline}/1d/{TODAY - d * DAY}-{TODAY - d * DAY + DAY}" for d in days_back]


def hourly(pipeline: str, hours_back: range) -> list[str]:
    return [
        f"bingen/{pipeline}/1h/{CURRENT_HOUR - h * HOUR}-{CURRENT_HOUR - h * HOUR + HOUR}" for h in hours_back
    ]


def full_tree() -> list[str]:
    return [
        *daily("allocations", range(10)),
        *daily("assets", range(10)),
        *hourly("allocations", range(49)),
        *hourly("assets", range(49)),
    ]


def test_staleness_limits():
    limit = timedelta(hours=26)
    assert staleness(NOW - timedelta(hours=25, minutes=59), NOW, limit) is None
    assert staleness(NOW - limit, NOW, limit) is None
    stale = staleness(NOW - timedelta(hours=30), NOW, limit)
    assert stale.key == "stale" and "30.0h old (limit 26.0h)" in stale.summary
    assert staleness(None, NOW, limit).summary == "no verified snapshot exists"


def test_a_healthy_tree_has_no_condition():
    tree = full_tree()
    assert check_pod(tree, tree, NOW) == []


def test_lost_files_are_named_but_aged_out_ones_are_not():
    snapshot = [
        *full_tree(),
        *daily("allocations", range(10, 12)),
        *hourly("assets", range(49, 60)),
        "misc/state.json",
    ]
    pod = [p for p in full_tree() if p not in daily("assets", range(3, 5))]
    lost = lost_files(snapshot, pod, NOW)
    assert lost == sorted([*daily("assets", range(3, 5)), "misc/state.json"])


def test_a_store_lost_entirely_counts_whole():
    tree = full_tree()
    pod = [p for p in tree if "/assets/1d/" not in p]
    assert lost_files(tree, pod, NOW) == sorted(daily("assets", range(10)))


def test_missing_days_in_the_middle_but_not_today():
    pod = [p for p in full_tree() if p not in daily("allocations", [0, 4, 5])]
    assert missing_days(pod, NOW) == {"allocations/1d": ["2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z"]}


def test_hourly_coverage_tolerates_the_current_hour_only():
    tree = full_tree()
    assert hourly_coverage(tree, NOW) == {"allocations/1h": 49, "assets/1h": 49}
    no_current = [p for p in tree if p not in hourly("assets", [0])]
    assert [c.key for c in check_pod(None, no_current, NOW)] == []
    short = [p for p in tree if p not in hourly("assets", range(30, 49))]
    [condition] = check_pod(None, short, NOW)
    assert condition.key == "hourly_short" and condition.details["hours"] == {"assets/1h": 30}


def test_check_pod_reports_each_kind_once():
    tree = full_tree()
    pod = [p for p in tree if p not in daily("assets", [2, 3])]
    conditions = {c.key: c for c in check_pod(tree, pod, NOW)}
    assert set(conditions) == {"lost_files", "missing_days"}
    assert conditions["lost_files"].details["paths"] == sorted(daily("assets", [2, 3]))
    assert conditions["missing_days"].details["days"] == {
        "assets/1d": ["2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z"]
    }


def test_coverage_map_marks_gaps_for_pod_and_snapshot():
    tree = full_tree()
    pod = [p for p in tree if p not in daily("assets", [2]) + hourly("allocations", [5])]
    stores = {s["store"]: s for s in coverage_map(pod, tree, NOW)}
    assert set(stores) == {"allocations/1d", "assets/1d", "allocations/1h", "assets/1h"}
    assets = stores["assets/1d"]
    assert len(assets["slots"]) == 10 and assets["gaps"] == 1
    [gap] = [s for s in assets["slots"] if s["gap"]]
    assert gap == {"start": "2026-03-08T00:00:00Z", "pod": False, "snapshot": True, "gap": True}
    hours = stores["allocations/1h"]
    assert len(hours["slots"]) == 49 and hours["gaps"] == 1 and hours["pod_files"] == 48
    assert stores["allocations/1d"]["gaps"] == 0 and stores["allocations/1d"]["snapshot_files"] == 10


def test_coverage_map_without_snapshot_and_with_other_stores():
    pod = [*daily("allocations", range(3)), "bingen/cloudcosts/1w/1-2"]
    stores = {s["store"]: s for s in coverage_map(pod, None, NOW)}
    assert stores["cloudcosts/1w"]["slots"] == [] and stores["cloudcosts/1w"]["pod_files"] == 1
    assert stores["assets/1d"]["gaps"] == 0 and stores["assets/1h"]["gaps"] == 48
