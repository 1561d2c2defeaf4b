"""Prometheus retention: durations, the answers Prometheus gives, and the window check."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from kubecost_etl.etl.windows import RepairWindow
from kubecost_etl.repair.retention import (
    OutsideRetention,
    Retention,
    RetentionUnknown,
    _from_flags,
    _from_runtimeinfo,
    ask_prometheus,
    check_window,
    configured_retention,
    parse_duration,
    parse_retention,
)
from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15d", 15 * DAY),
        ("97h", 97 * 3600),
        ("4d1h", 97 * 3600),
        ("2w", 14 * DAY),
        ("1y", 365 * DAY),
        ("90m", 5400),
        ("30s", 30),
        ("1h30m", 5400),
        ("1500ms", 1),
    ],
)
def test_prometheus_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "d", "15 d", "1d2y", "-1d", "15D"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("15d", (15 * DAY, None)),
        ("15d or 10GiB", (15 * DAY, "10GiB")),
        ("10GiB", (None, "10GiB")),
        ("512MB or 97h", (97 * 3600, "512MB")),
        ("0s or 1TB", (None, "1TB")),
        ("1.5GiB", (None, "1.5GiB")),
    ],
)
def test_retention_texts_with_size_limits(text, parsed):
    assert parse_retention(text) == parsed


@pytest.mark.parametrize(
    "text", ["", "15d or", "10GiB or 20GiB", "15d or 10GiB or 1d", "10 GiB", "0s", "15d and 1GB"]
)
def test_bad_retention_texts_are_refused(text):
    with pytest.raises(ValueError):
        parse_retention(text)


def test_what_prometheus_reports():
    assert _from_runtimeinfo({"storageRetention": "15d"}) == "15d"
    assert _from_runtimeinfo({"storageRetention": "4d1h or 10GiB"}) == "4d1h or 10GiB"
    assert _from_runtimeinfo({"storageRetention": "10GiB"}) == "10GiB"
    assert _from_runtimeinfo({"storageRetention": "forever"}) is None
    assert _from_flags({"storage.tsdb.retention.time": "97h"}) == "97h"
    assert _from_flags({"storage.tsdb.retention.time": "0s", "storage.tsdb.retention": "30d"}) == "30d"
    assert _from_flags({"storage.tsdb.retention.time": "0s", "storage.tsdb.retention.size": "0B"}) == "15d"
    assert _from_flags({"storage.tsdb.retention.time": "0s", "storage.tsdb.retention.size": "10GB"}) == "10GB"
    assert (
        _from_flags({"storage.tsdb.retention.time": "15d", "storage.tsdb.retention.size": "10GB"})
        == "15d or 10GB"
    )


def test_a_size_limit_is_reported_and_only_the_time_part_bounds_the_window():
    now = int(datetime(2026, 1, 14, 10, 30, tzinfo=UTC).timestamp())
    both = configured_retention("3d or 10GiB")
    assert (both.seconds, both.size, both.describe()) == (3 * DAY, "10GiB", "3d or 10GiB")
    with pytest.raises(OutsideRetention, match="keeps 3d or 10GiB of metrics"):
        check_window(RepairWindow("w", now - 5 * DAY, now), both, now)
    size_only = configured_retention("10GiB")
    assert size_only.seconds is None and size_only.oldest_repairable(now) is None
    assert size_only.describe() == "a size limit of 10GiB and no time limit"
    check_window(RepairWindow("w", now - 60 * DAY, now), size_only, now)  # the data check decides then
    assert Retention.from_dict(both.as_dict()) == both


def test_a_window_older_than_the_retention_is_refused_naming_the_oldest_repairable_time():
    now = int(datetime(2026, 1, 14, 10, 30, tzinfo=UTC).timestamp())
    retention = Retention(3 * DAY, "3d", "test")
    assert retention.oldest_repairable(now) == int(datetime(2026, 1, 12, tzinfo=UTC).timestamp())
    check_window(RepairWindow("w", retention.oldest_repairable(now), now), retention, now)
    # A window starting inside a day still rebuilds that whole day: the 11th is too old.
    late_start = RepairWindow("w", int(datetime(2026, 1, 11, 12, tzinfo=UTC).timestamp()), now)
    with pytest.raises(OutsideRetention) as refused:
        check_window(late_start, retention, now)
    assert "keeps 3d of metrics" in str(refused.value)
    assert "oldest repairable time is 2026-01-12T00:00:00Z" in str(refused.value)
    assert configured_retention("2d").source == "repair.prometheus_retention in the configuration"


def test_asking_prometheus_through_the_service_proxy_and_directly(repair_cluster_factory):
    cluster = repair_cluster_factory(prometheus_retention="97h")
    core = cluster.core()
    proxied = ask_prometheus(ServiceProxyHttp(core.api_client, "kubecost", "kubecost-prometheus-server:80"))
    assert (proxied.seconds, proxied.text) == (97 * 3600, "4d1h")
    assert "runtimeinfo" in proxied.source and "kubecost-prometheus-server" in proxied.source
    assert ask_prometheus(DirectHttp(cluster.sim.prometheus_url)).seconds == 97 * 3600


def test_a_combined_retention_reported_by_prometheus(repair_cluster_factory):
    cluster = repair_cluster_factory(prometheus_retention="97h", prometheus_retention_size="10GiB")
    found = ask_prometheus(DirectHttp(cluster.sim.prometheus_url))
    assert (found.seconds, found.size, found.text) == (97 * 3600, "10GiB", "4d1h or 10GiB")


def test_no_reachable_prometheus_means_refusal_with_how_to_configure(repair_cluster):
    core = repair_cluster.core()
    with pytest.raises(RetentionUnknown) as missing:
        ask_prometheus(ServiceProxyHttp(core.api_client, "kubecost", "no-such-prometheus:80"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(RetentionUnknown) as unreachable:
        ask_prometheus(DirectHttp(f"http://127.0.0.1:{closed_port}", timeout=2))
    for refusal in (missing.value, unreachable.value):
        assert "repair.prometheus_retention" in str(refusal) and "repair.prometheus_url" in str(refusal)
    assert "HTTP 404" in str(missing.value) and "ConnectionError" in str(unreachable.value)
