"""The federate stages' first task: the configuration's federation is refused before any write."""

from __future__ import annotations

import json

import pytest
from kubecost_etl.airflow.stages import federate
from kubecost_etl.errors import ConfigError


def write(tmp_path, monkeypatch, clusters):
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(json.dumps({"clusters": clusters}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))


def fed(tmp_path, **extra):
    return {
        "object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path / "b")}},
        "install_id": "test",
        **extra,
    }


def test_only_clusters_with_a_federated_block_are_selected(tmp_path, monkeypatch):
    write(tmp_path, monkeypatch, [{"id": "a", "federated": fed(tmp_path)}, {"id": "b"}])
    assert federate.select_clusters(None) == ["a"]
    with pytest.raises(ConfigError, match=r"cluster 'b': federated: not configured"):
        federate.select_clusters(["b"])


def test_a_broken_store_anywhere_or_a_duplicate_id_fails_the_first_task(tmp_path, monkeypatch):
    bad_store = {
        "object_store": {"type": "FILESYSTEM", "config": {"directory": "/x", "prefix": "p"}},
        "install_id": "test",
    }
    write(
        tmp_path, monkeypatch, [{"id": "a", "federated": fed(tmp_path)}, {"id": "b", "federated": bad_store}]
    )
    with pytest.raises(ConfigError, match=r"cluster 'b': federated\.object_store: .*config\.prefix"):
        federate.select_clusters(None)
    write(
        tmp_path,
        monkeypatch,
        [{"id": "a", "federated": fed(tmp_path)}, {"id": "b", "federated": fed(tmp_path, cluster_id="a")}],
    )
    with pytest.raises(
        ConfigError, match=r"cluster 'b': federated\.cluster_id 'a': already used by cluster 'a'"
    ):
        federate.select_clusters(["a"])  # checked across the whole config, not only the requested clusters
    assert not (tmp_path / "b").exists()  # nothing written
