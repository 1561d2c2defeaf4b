"""The repair preflight asks Prometheus for the data itself (simulator, real sockets): short days
are refused.
"""

from __future__ import annotations

import logging
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException
from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.airflow.stages import repair as stages
from kubecost_etl.etl.windows import DAY, iso
from kubecost_etl.repair.prometheus_coverage import DEFAULT_METRICS

from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import CLUSTER_ID

repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures


def params(window, **extra) -> dict:
    return {
        "cluster": CLUSTER_ID,
        "window": window,
        "profile": "v2",
        "provider": None,
        "backup_first": False,
        "dry_run": False,
        **extra,
    }


def today() -> int:
    now = int(time.time())
    return now - now % DAY


def days(first_ago: int, last_ago: int) -> str:
    """A window of whole days, ``first_ago`` to ``last_ago`` days ago (inclusive)."""
    return f"{iso(today() - first_ago * DAY)},{iso(today() - (last_ago - 1) * DAY)}"


def date(ago: int) -> str:
    return iso(today() - ago * DAY)[:10]


def range_queries(cluster) -> list[dict]:
    return [e for e in cluster.sim.request_log_lines() if e["path"] == "/api/v1/query_range"]


def test_after_a_wipe_old_days_are_refused_with_zero_repair_calls_and_a_window_inside_runs(
    repair_cluster, caplog
):
    repair_cluster.sim.set_faults(prometheus_data_from=today() - 3 * DAY)  # its retention still says 15d
    with caplog.at_level(logging.INFO), pytest.raises(AirflowFailException) as refused:
        stages.preflight(params(days(6, 4)))
    message = str(refused.value)
    assert message.startswith("preflight: Prometheus lacks metrics for 3 day(s)")
    for ago in (6, 5, 4):
        assert f"{date(ago)}: 0/24 hours (0%)" in message
        assert f"BELOW {date(ago)}" in caplog.text  # the coverage table
    assert repair_cluster.repair_calls() == []
    assert len(range_queries(repair_cluster)) == len(DEFAULT_METRICS)

    plan = stages.preflight(params(days(3, 1)))
    assert plan["partial_days"] == [] and plan["coverage"]["queries"] == len(DEFAULT_METRICS)
    watch = stages.request_step(plan, "asset")
    assert watch["answer"]["code"] == 200 and len(repair_cluster.repair_calls()) == 1


def test_a_gap_day_is_refused_alone_and_allow_partial_days_lets_it_through_into_the_summary(
    repair_cluster, caplog
):
    gap = today() - 2 * DAY
    repair_cluster.sim.set_faults(prometheus_gap=[f"{gap},{gap + DAY}"])
    with pytest.raises(AirflowFailException) as refused:
        stages.preflight(params(days(3, 1)))
    assert f"{date(2)}: 0/24 hours" in str(refused.value)
    assert date(3) not in str(refused.value).split("issue #1920)")[1]
    assert date(1) not in str(refused.value).split("issue #1920)")[1]
    with pytest.raises(AirflowFailException, match="allow_partial_days: .* is not a day of the window"):
        stages.preflight(params(days(3, 1), allow_partial_days=[date(5)]))

    with caplog.at_level(logging.INFO):
        plan = stages.preflight(params(days(3, 1), dry_run=True, allow_partial_days=[date(2)]))
    assert f"BELOW {date(2)}" in caplog.text and f"ok    {date(3)}" in caplog.text  # dry run: the table
    assert f"allow_partial_days: {date(2)} is repaired although Prometheus lacks metrics" in caplog.text
    summary = stages.summary(plan, [])
    assert summary["partial_days"] == [date(2)]
    assert (
        f"allow_partial_days: {date(2)} would be repaired although Prometheus lacked metrics"
        in summary["lines"][-1]
    )
    assert repair_cluster.repair_calls() == []


def test_the_refusal_names_the_newest_verified_snapshot_that_covers_the_short_days(repair_cluster):
    snapshot = backup_stages.run_backup(CLUSTER_ID)["snapshot_id"]
    repair_cluster.sim.set_faults(prometheus_data_from=today() - 2 * DAY)
    with pytest.raises(AirflowFailException) as refused:
        stages.preflight(params(days(4, 3)))
    assert f"restore those days from snapshot {snapshot}" in str(refused.value)
    assert str(repair_cluster.backup_dir) in str(refused.value)
    assert repair_cluster.repair_calls() == []


@pytest.mark.parametrize(
    ("faults", "problem"),
    [
        ({"prometheus_http_status": 500}, "HTTP 500"),
        ({"prometheus_http_status": 422}, "HTTP 422"),
        ({"prometheus_body": "<html>proxy error</html>"}, "unreadable answer"),
    ],
)
def test_prometheus_faults_refuse_the_run_with_zero_repair_calls(repair_cluster, faults, problem):
    repair_cluster.sim.set_faults(**faults)
    with pytest.raises(AirflowFailException, match=f"preflight: Prometheus range query .*{problem}"):
        stages.preflight(params("yesterday"))
    assert repair_cluster.repair_calls() == []


def test_a_slow_prometheus_and_an_empty_metric_list_are_refused(repair_cluster):
    repair_cluster.configure(request_timeout_seconds=1)
    repair_cluster.sim.set_faults(prometheus_delay_seconds=3)
    with pytest.raises(AirflowFailException, match="preflight: Prometheus range query .* no answer"):
        stages.preflight(params("yesterday"))
    repair_cluster.sim.reset_faults()
    repair_cluster.configure(required_metrics=[])
    with pytest.raises(AirflowFailException, match="repair.required_metrics: expected a non-empty list"):
        stages.preflight(params("yesterday"))
    assert repair_cluster.repair_calls() == []
