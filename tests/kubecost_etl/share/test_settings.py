"""The ``share:`` settings of the configuration."""

from __future__ import annotations

import pytest
from kubecost_etl.config import ConfigError, parse_config


def config(share: dict | None = None, defaults: dict | None = None) -> dict:
    cluster = {
        "id": "a",
        "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": "/tmp/x"}}},
    }
    if share is not None:
        cluster["share"] = share
    return {"defaults": defaults or {}, "clusters": [cluster]}


def test_share_settings_default_to_the_backup_store_and_read_their_own():
    default = parse_config(config()).cluster("a").share
    assert default.object_store is None and default.link_expiry_hours == 24 and default.compression_level == 6
    own = parse_config(
        config(
            {
                "object_store": {"conn_id": "aws_support", "bucket": "support", "prefix": "/s/"},
                "link_expiry_hours": 168,
            },
            defaults={"share": {"compression_level": 9}},
        )
    )
    settings = own.cluster("a").share
    assert settings.object_store.conn_id == "aws_support" and settings.object_store.prefix == "s"
    assert settings.link_expiry_hours == 168 and settings.compression_level == 9


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        (
            {"link_expiry_hours": 169},
            "cluster 'a': share.link_expiry_hours: expected a whole number from 1 to 168",
        ),
        ({"compression_level": 0}, "share.compression_level"),
        ({"linkexpiry": 1}, "cluster 'a': share: unknown key(s) ['linkexpiry']"),
        ({"object_store": {"conn_id": "x"}}, "cluster 'a': share.object_store: bucket: missing"),
        ("yes", "cluster 'a': share: expected a mapping"),
    ],
)
def test_bad_share_settings_name_the_cluster_and_the_field(share, expected):
    with pytest.raises(ConfigError) as refused:
        parse_config(config(share))
    assert expected in str(refused.value)
