"""One alert per condition until it clears, then one recovery message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubecost_etl.health.alerts import alert_text, reconcile
from kubecost_etl.health.checks import Condition

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
LOST = Condition("lost_files", "2 file(s) of the latest verified snapshot are missing from the pod")
STALE = Condition("stale", "no verified snapshot exists")


def test_a_condition_alerts_once_then_recovers_once():
    first = reconcile({}, [LOST], T0)
    assert [c.key for c in first.fire] == ["lost_files"] and first.changed
    assert first.state == {"lost_files": {"since": T0.isoformat(), "summary": LOST.summary}}
    second = reconcile(first.state, [LOST], T0 + timedelta(hours=1))
    assert second.fire == [] and second.ongoing == ["lost_files"] and not second.changed
    assert alert_text("a", second) is None and second.state == first.state
    third = reconcile(second.state, [], T0 + timedelta(hours=2))
    assert third.state == {} and [r["key"] for r in third.recovered] == ["lost_files"]
    assert alert_text("a", third) == (
        ":white_check_mark: Kubecost ETL health, "
        f"cluster a: lost_files recovered (since {T0.isoformat()}: {LOST.summary})"
    )
    assert reconcile(third.state, [], T0 + timedelta(hours=3)).changed is False


def test_new_and_cleared_conditions_in_one_message_and_kept_keys():
    decision = reconcile(
        {"lost_files": {"since": "x", "summary": "y"}, "stale": {"since": "s", "summary": "t"}},
        [STALE, Condition("config", "bad")],
        T0,
        keep={"lost_files"},
    )
    assert [c.key for c in decision.fire] == ["config"] and decision.recovered == []
    assert set(decision.state) == {"lost_files", "stale", "config"}
    assert alert_text("b", decision) == ":rotating_light: Kubecost ETL health, cluster b: config: bad"
