"""The retention policy on fixed timestamps, in the style of restic's forget tests: a table of snapshot
times and policies, and the exact kept set with the rule(s) that kept each."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubecost_etl.prune.policy import SnapshotState, apply_policy
from kubecost_etl.prune.settings import RetentionSettings

# Newest first. ISO weeks: 2026-03-09..15 is W11, 03-08 W10, 03-01 and 02-27 W09, 02-15 W07,
# 01-31 W05, 2025-12-31 is 2026-W01.
TIMES = {
    "s01": "2026-03-10T12:00:00",
    "s02": "2026-03-10T09:30:00",
    "s03": "2026-03-10T09:10:00",
    "s04": "2026-03-09T23:50:00",
    "s05": "2026-03-08T10:00:00",
    "s06": "2026-03-01T08:00:00",
    "s07": "2026-02-27T08:00:00",
    "s08": "2026-02-15T08:00:00",
    "s09": "2026-01-31T08:00:00",
    "s10": "2025-12-31T23:00:00",
    "s11": "2025-12-31T01:00:00",
}
NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


def snapshot_id(name: str) -> str:
    made = datetime.fromisoformat(TIMES[name])
    return made.strftime("%Y%m%dT%H%M%SZ") + "-" + name


def states(statuses: dict[str, str] | None = None, extra: list[SnapshotState] = ()) -> list[SnapshotState]:
    statuses = statuses or {}
    return [
        SnapshotState(
            snapshot_id(n), datetime.fromisoformat(t).replace(tzinfo=UTC), statuses.get(n, "verified")
        )
        for n, t in TIMES.items()
    ] + list(extra)


def kept(decisions) -> dict[str, tuple[str, ...]]:
    return {d.snapshot_id.rsplit("-", 1)[1]: d.reasons for d in decisions if d.keep}


NV = "newest-verified"
CASES = [
    ({"keep_last": 3}, {"s01": ("last", NV), "s02": ("last",), "s03": ("last",)}),
    ({"keep_hourly": 3}, {"s01": ("hourly", NV), "s02": ("hourly",), "s04": ("hourly",)}),
    ({"keep_daily": 3}, {"s01": ("daily", NV), "s04": ("daily",), "s05": ("daily",)}),
    ({"keep_weekly": 2}, {"s01": ("weekly", NV), "s05": ("weekly",)}),
    # Fewer weeks with snapshots than asked: the oldest (s11, 2026-W01 like s10) is kept as well.
    (
        {"keep_weekly": 10},
        {
            "s01": ("weekly", NV),
            "s05": ("weekly",),
            "s06": ("weekly",),
            "s08": ("weekly",),
            "s09": ("weekly",),
            "s10": ("weekly",),
            "s11": ("weekly-oldest",),
        },
    ),
    ({"keep_monthly": 2}, {"s01": ("monthly", NV), "s07": ("monthly",)}),
    (
        {"keep_daily": 20},
        {
            "s01": ("daily", NV),
            "s04": ("daily",),
            "s05": ("daily",),
            "s06": ("daily",),
            "s07": ("daily",),
            "s08": ("daily",),
            "s09": ("daily",),
            "s10": ("daily",),
            "s11": ("daily-oldest",),
        },
    ),
    # Measured from the newest snapshot (12:00 on the 10th), strictly within.
    (
        {"keep_within": "2d"},
        {"s01": ("within", NV), "s02": ("within",), "s03": ("within",), "s04": ("within",)},
    ),
    # s05 is exactly 2d2h older than s01: on the boundary, so not within; a minute more takes it in.
    (
        {"keep_within": "2d2h"},
        {"s01": ("within", NV), "s02": ("within",), "s03": ("within",), "s04": ("within",)},
    ),
    (
        {"keep_within": "2d2h1m"},
        {
            "s01": ("within", NV),
            "s02": ("within",),
            "s03": ("within",),
            "s04": ("within",),
            "s05": ("within",),
        },
    ),
    (
        {"keep_last": 1, "keep_daily": 2, "keep_monthly": 3},
        {
            "s01": ("last", "daily", "monthly", NV),
            "s04": ("daily",),
            "s07": ("monthly",),
            "s09": ("monthly",),
        },
    ),
    (
        {"keep_last": 2, "keep_hourly": 2, "keep_weekly": 1, "keep_within": "3h"},
        {
            "s01": ("last", "hourly", "weekly", "within", NV),
            "s02": ("last", "hourly", "within"),
            "s03": ("within",),
        },
    ),
]


@pytest.mark.parametrize(("policy", "expected"), CASES, ids=[str(p) for p, _ in CASES])
def test_policy_table(policy, expected):
    decisions = apply_policy(states(), RetentionSettings(**policy), NOW)
    assert kept(decisions) == expected
    forgotten = [d for d in decisions if not d.keep]
    assert {d.snapshot_id.rsplit("-", 1)[1] for d in forgotten} == set(TIMES) - set(expected)
    assert all(d.reasons == ("policy",) for d in forgotten)
    assert [d.snapshot_id for d in decisions] == sorted((d.snapshot_id for d in decisions), reverse=True)


def test_rules_count_only_verified_snapshots_and_the_bad_ones_go_after_the_margin():
    newer_unverified = SnapshotState(
        "20260310T123000Z-new", datetime(2026, 3, 10, 12, 30, tzinfo=UTC), "unverified"
    )
    statuses = {"s01": "failed", "s03": "unverified", "s08": "failed", "s09": "unverified"}
    decisions = apply_policy(states(statuses, [newer_unverified]), RetentionSettings(keep_last=2), NOW)
    by_name = {d.snapshot_id.rsplit("-", 1)[1]: d for d in decisions}
    assert kept(decisions) == {
        "new": ("recent",),  # unverified, younger than the 24h margin: its backup may still be verifying
        "s01": ("recent",),  # failed, but younger than the margin: left alone
        "s03": ("recent",),
        "s02": ("last", NV),  # the rules skip unverified and failed snapshots
        "s04": ("last",),
    }
    assert by_name["s08"].reasons == ("failed",) and by_name["s09"].reasons == ("unverified",)
    assert by_name["s05"].reasons == ("policy",)


def test_the_newest_verified_snapshot_and_those_in_use_are_always_kept():
    # Every snapshot but the oldest failed: no rule keeps s11 except being the newest verified.
    statuses = {n: "failed" for n in TIMES if n != "s11"}
    decisions = apply_policy(
        states(statuses), RetentionSettings(keep_within="1h"), NOW, in_use=[snapshot_id("s06")]
    )
    assert kept(decisions) == {
        "s01": ("recent",),
        "s02": ("recent",),
        "s03": ("recent",),
        "s04": ("recent",),
        "s06": ("in-use",),
        "s11": ("within", NV),
    }


def test_an_undated_snapshot_is_never_forgotten():
    odd = SnapshotState("hand-made-copy", None, "verified")
    decisions = apply_policy(states(extra=[odd]), RetentionSettings(keep_last=1), NOW)
    assert kept(decisions)["hand-made-copy".rsplit("-", 1)[1]] == ("undated",)
    assert decisions[-1].snapshot_id == "hand-made-copy"  # listed after the dated ones


def test_no_snapshots_no_decisions():
    assert apply_policy([], RetentionSettings(keep_last=1), NOW) == []


def test_a_repository_without_any_verified_snapshot_loses_nothing():
    statuses = {n: ("failed" if i % 2 else "unverified") for i, n in enumerate(TIMES)}
    decisions = apply_policy(states(statuses), RetentionSettings(keep_last=1), NOW)
    assert all(d.keep for d in decisions)
    assert {d.reasons for d in decisions} == {("recent",), ("no-verified-snapshot",)}


def test_a_quarantined_snapshot_counts_for_no_rule_but_stays_until_mended():
    """s01 and s02 name an object a later verify found damaged: keep_last 2 keeps two restorable ones
    (s03, s04) and the quarantined ones stay, so the next backup can mend them."""
    statuses = {"s01": "quarantined", "s02": "quarantined"}
    decisions = apply_policy(states(statuses), RetentionSettings(keep_last=2), NOW)
    assert kept(decisions) == {
        "s01": ("quarantine",),
        "s02": ("quarantine",),
        "s03": ("last", NV),
        "s04": ("last",),
    }
