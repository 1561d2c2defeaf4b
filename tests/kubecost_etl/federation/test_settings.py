"""The federated: block of the configuration, and the mistakes refused before anything is written."""

from __future__ import annotations

import os

import pytest
from kubecost_etl.config import parse_config
from kubecost_etl.errors import ConfigError
from kubecost_etl.federation.layout import FederatedLayout, coverage_summary, file_window
from kubecost_etl.federation.settings import (
    KEYS,
    FederatedSettings,
    Layout,
    check_object_store,
    check_unique_cluster_ids,
)

FS_STORE = {"type": "FILESYSTEM", "config": {"directory": "/tmp/federated"}}


def config(*clusters, defaults=None):
    return parse_config({"defaults": defaults or {}, "clusters": list(clusters)})


def test_defaults_merge_and_cluster_id_defaults_to_the_clusters_id():
    cfg = config(
        {"id": "a"},
        {"id": "b", "federated": {"cluster_id": "b-prod", "layout": "durable"}},
        defaults={"federated": {"object_store": FS_STORE, "retention": {"1h": "3d"}}},
    )
    a, b = (c.federated for c in cfg.clusters)
    assert (a.cluster_id, a.layout, a.retention, a.take_over) == ("a", Layout.FEDERATED, {"1h": "3d"}, False)
    assert (b.cluster_id, b.layout) == ("b-prod", Layout.DURABLE)
    assert config({"id": "c"}).clusters[0].federated is None  # no block: no federation
    assert config({"id": "d", "federated": {"object_store": FS_STORE}}).clusters[0].federated.retention == {
        "1h": "7d",
        "10m": "7d",
    }


def test_keys_come_from_the_dataclass():
    assert KEYS == set(FederatedSettings.__dataclass_fields__)
    with pytest.raises(ConfigError, match=r"cluster 'a': federated: unknown key\(s\) \['bucket'\]"):
        config({"id": "a", "federated": {"object_store": FS_STORE, "bucket": "x"}})


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({}, r"cluster 'a': federated\.object_store: missing"),
        ({"object_store": FS_STORE, "layout": "combined"}, r"federated\.layout: 'combined' is not one of"),
        (
            {"object_store": FS_STORE, "retention": {"1h": "soon"}},
            r"federated\.retention\.1h: 'soon' is not an age",
        ),
        (
            {"object_store": FS_STORE, "retention": {"../x": "1d"}},
            r"federated\.retention: '\.\./x' is not a resolution",
        ),
        ({"object_store": FS_STORE, "take_over": "yes"}, r"federated\.take_over: expected true or false"),
        (
            {"object_store": {"config_file": "/nonexistent/federated-store.yaml"}},
            r"cluster 'a': federated\.object_store: config_file: "
            r"/nonexistent/federated-store\.yaml does not exist",
        ),
    ],
)
def test_mistakes_name_the_cluster_and_the_field(block, message):
    with pytest.raises(ConfigError, match=message):
        config({"id": "a", "federated": block})


def test_unreadable_federated_store_yaml(tmp_path):
    unreadable = tmp_path / "federated-store.yaml"
    unreadable.write_text("type: S3\nconfig: {bucket: b}\n")
    os.chmod(unreadable, 0)
    if not os.access(unreadable, os.R_OK):  # root reads anything: then only the directory case below applies
        with pytest.raises(
            ConfigError, match=r"cluster 'a': federated\.object_store: config_file: .* not readable"
        ):
            config({"id": "a", "federated": {"object_store": {"config_file": str(unreadable)}}})
    a_directory = tmp_path / "mounted-secret"
    a_directory.mkdir()
    cfg = config({"id": "a", "federated": {"object_store": {"config_file": str(a_directory)}}})
    with pytest.raises(
        ConfigError, match=r"cluster 'a': federated\.object_store: cannot read object store config"
    ):
        check_object_store(cfg.clusters[0].federated, "a")


def test_prefix_inside_config_is_refused_naming_cluster_and_field(tmp_path):
    path = tmp_path / "federated-store.yaml"
    path.write_text(
        "type: S3\nconfig:\n  bucket: kubecost-federated\n  endpoint: minio:9000\n  prefix: team-a\n"
    )
    cfg = config({"id": "a", "federated": {"object_store": {"config_file": str(path)}}})
    with pytest.raises(
        ConfigError, match=r"cluster 'a': federated\.object_store: .*config\.prefix: prefix must be"
    ):
        check_object_store(cfg.clusters[0].federated, "a")
    inline = config(
        {
            "id": "b",
            "federated": {
                "object_store": {"type": "FILESYSTEM", "config": {"directory": "/x", "prefix": "p"}}
            },
        }
    )
    with pytest.raises(ConfigError, match=r"cluster 'b': federated\.object_store: .*config\.prefix"):
        check_object_store(inline.clusters[0].federated, "b")


def test_duplicate_effective_cluster_ids_are_refused():
    cfg = config(
        {"id": "a"},
        {"id": "b", "federated": {"cluster_id": "a"}},
        {"id": "c", "federated": None},
        defaults={"federated": {"object_store": FS_STORE}},
    )
    with pytest.raises(
        ConfigError, match=r"cluster 'b': federated\.cluster_id 'a': already used by cluster 'a'"
    ):
        check_unique_cluster_ids(cfg.clusters)
    durable = config(
        {"id": "a"}, {"id": "b"}, defaults={"federated": {"object_store": FS_STORE, "layout": "durable"}}
    )
    with pytest.raises(ConfigError, match=r"cluster 'b': .*layout durable"):
        check_unique_cluster_ids(durable.clusters)
    check_unique_cluster_ids(
        config({"id": "a"}, {"id": "b"}, defaults={"federated": {"object_store": FS_STORE}}).clusters
    )


def test_keys_carry_whatever_is_under_bingen():
    fed = FederatedLayout(Layout.FEDERATED, "prod-east")
    assert (
        fed.key("bingen/networkinsights/10m/1-601")
        == "federated/prod-east/etl/bingen/networkinsights/10m/1-601"
    )
    assert fed.relative_path("federated/prod-east/etl/bingen/a/1w/x") == "bingen/a/1w/x"
    assert fed.relative_path("federated/other/etl/bingen/a/1w/x") is None
    assert (
        FederatedLayout(Layout.DURABLE, "prod-east").key("bingen/assets/1d/0-86400")
        == "etl/bingen/assets/1d/0-86400"
    )
    with pytest.raises(ValueError):
        fed.key("readme.txt")
    with pytest.raises(ValueError):
        fed.key("bingen/../../x")
    assert file_window("bingen/cloudcosts/1d/aws.86400-172800.bin").resolution == "1d"
    assert file_window("bingen/assets/1d/notes") is None
    summary = coverage_summary(
        ["bingen/assets/1d/0-86400", "bingen/assets/1d/86400-172800", "bingen/assets/1h/0-3600"]
    )
    assert summary["assets"]["1d"]["days"] == 2 and summary["assets"]["1h"]["hours"] == 1
