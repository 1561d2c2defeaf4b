"""The ``retention:`` block: defaults, merging with ``defaults``, and every mistake named by
cluster and field.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubecost_etl.config import ConfigError, parse_config
from kubecost_etl.prune.settings import RetentionSettings, parse_retention_settings

WHERE = "cluster 'prod'"


def test_no_block_means_not_pruned_and_defaults_are_safe():
    assert parse_retention_settings(None, WHERE) is None
    settings = parse_retention_settings({"keep_daily": 7}, WHERE)
    assert settings == RetentionSettings(keep_daily=7)
    assert settings.margin == timedelta(hours=24) and settings.within is None
    assert RetentionSettings.from_dict(settings.as_dict()) == settings


def test_every_key():
    settings = parse_retention_settings(
        {
            "keep_last": 3,
            "keep_hourly": 24,
            "keep_daily": 7,
            "keep_weekly": 4,
            "keep_monthly": 12,
            "keep_within": "30d",
            "gc_safety_margin": "36h",
            "allow_unsafe_margin": False,
        },
        WHERE,
    )
    assert settings.within == timedelta(days=30) and settings.margin == timedelta(hours=36)
    assert (settings.keep_last, settings.keep_monthly) == (3, 12)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"keep_last": -1}, r"cluster 'prod': retention.keep_last: expected a whole number >= 0, got -1"),
        ({"keep_daily": 1.5}, r"retention.keep_daily: expected a whole number >= 0, got 1.5"),
        ({"keep_daily": "7"}, r"retention.keep_daily: expected a whole number >= 0, got '7'"),
        ({"keep_daily": True}, r"retention.keep_daily: expected a whole number >= 0, got True"),
        ({"keep_daily": 7, "keep_yearly": 2}, r"retention: unknown key\(s\) \['keep_yearly'\]"),
        ({"keep_within": "a month"}, r"retention.keep_within: 'a month' is not a Prometheus duration"),
        ({"keep_within": 30}, r"retention.keep_within: expected a duration such as 30d or 24h, got 30"),
        ({"keep_daily": 7, "gc_safety_margin": "1 day"}, r"retention.gc_safety_margin: '1 day' is not"),
        ({"keep_daily": 7, "gc_safety_margin": "59m"}, r"retention.gc_safety_margin: 59m is under 1h"),
        ({"keep_daily": 7, "gc_safety_margin": "0s"}, r"retention.gc_safety_margin: 0s is under 1h"),
        (
            {"keep_daily": 7, "allow_unsafe_margin": "yes"},
            r"retention.allow_unsafe_margin: expected true or false",
        ),
        ({}, r"cluster 'prod': retention: the policy keeps nothing"),
        ({"keep_last": 0, "keep_daily": 0, "gc_safety_margin": "48h"}, r"the policy keeps nothing"),
        ({"keep_within": "0s"}, r"the policy keeps nothing"),
        ([7], r"retention: expected a mapping"),
    ],
)
def test_bad_input_is_a_config_error_naming_cluster_and_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_retention_settings(raw, WHERE)


def test_an_unsafe_margin_needs_the_explicit_switch():
    settings = parse_retention_settings(
        {"keep_last": 1, "gc_safety_margin": "0s", "allow_unsafe_margin": True}, WHERE
    )
    assert settings.margin == timedelta(0)


def test_the_config_merges_defaults_key_by_key_and_validates_the_prune_schedule():
    raw = {
        "prune_schedule": "0 4 * * *",
        "defaults": {"retention": {"keep_daily": 14, "gc_safety_margin": "48h"}},
        "clusters": [{"id": "a"}, {"id": "b", "retention": {"keep_daily": 3, "keep_monthly": 6}}],
    }
    config = parse_config(raw)
    assert config.cluster("a").retention == RetentionSettings(keep_daily=14, gc_safety_margin="48h")
    assert config.cluster("b").retention == RetentionSettings(
        keep_daily=3, keep_monthly=6, gc_safety_margin="48h"
    )
    assert parse_config({"clusters": [{"id": "c"}]}).cluster("c").retention is None
    with pytest.raises(ConfigError, match=r"cluster 'b': retention.keep_daily: expected a whole number"):
        parse_config({**raw, "clusters": [{"id": "b", "retention": {"keep_daily": -3}}]})
    assert parse_config(raw).prune_schedule == "0 4 * * *"
    assert parse_config({"clusters": [{"id": "c"}]}).prune_schedule == "@daily"
    assert parse_config({**raw, "prune_schedule": None}).prune_schedule is None  # manual runs only
    with pytest.raises(ConfigError, match=r"prune_schedule: expected a cron expression"):
        parse_config({**raw, "prune_schedule": 5})
    with pytest.raises(ConfigError, match=r"prune_schedule: '61 \* \* \* \*' is not a valid cron expression"):
        parse_config({**raw, "prune_schedule": "61 * * * *"})
    with pytest.raises(ConfigError, match=r"cluster 'a': retention: the policy keeps nothing"):
        parse_config({"defaults": {"retention": {"keep_daily": 0}}, "clusters": [{"id": "a"}]})
