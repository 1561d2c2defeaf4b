"""The health: section: defaults, durations, refusals naming the field, and the parse-time schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from kubecost_etl.config import parse_config
from kubecost_etl.errors import ConfigError
from kubecost_etl.health.settings import HealthSettings, health_schedule, parse_health_settings


def test_defaults_and_values():
    assert parse_config({"clusters": [{"id": "a"}]}).health == HealthSettings()
    assert HealthSettings().max_backup_age == timedelta(hours=26) and HealthSettings().schedule == "@hourly"
    parsed = parse_health_settings(
        {"max_backup_age": "2d", "auto_fill": True, "schedule": "*/30 * * * *"}, "c"
    )
    assert parsed == HealthSettings("*/30 * * * *", timedelta(days=2), True, False)
    assert parse_health_settings({"max_backup_age": 30}, "c").max_backup_age == timedelta(hours=30)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_backup_age": "0h"}, "health.max_backup_age"),
        ({"max_backup_age": "soon"}, "health.max_backup_age"),
        ({"auto_fill": "yes"}, "health.auto_fill"),
        ({"schedule": 5}, "health.schedule"),
        ({"autofill": True}, "unknown key"),
        ([], "expected a mapping"),
    ],
)
def test_bad_values_are_refused(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"clusters": [{"id": "a"}], "health": raw})


def test_schedule_is_read_at_parse_time_and_survives_a_broken_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"health": {"schedule": "15 * * * *"}, "clusters": [{"id": "a"}]}))
    assert health_schedule(str(config)) == "15 * * * *"
    config.write_text("health: [not, a, mapping")
    assert health_schedule(str(config)) == "@hourly"
    assert health_schedule(str(tmp_path / "missing.yaml")) == "@hourly"
