"""One simulated cluster backed up to a filesystem store, configured through KUBECOST_ETL_CONFIG."""

from __future__ import annotations

import json
from pathlib import Path

from tests.etl_trees import make_etl_dir

CLUSTER = "cluster-a"


def filesystem_cluster(tmp_path: Path, monkeypatch, simulator, seed: int):
    """(simulator, its ETL dir, the store's directory) for a small generated tree."""
    etl = make_etl_dir(tmp_path, days=4, hourly_hours=6, file_bytes=20_000, seed=seed)
    sim = simulator(etl)
    store = tmp_path / "store"
    cluster = {
        "id": CLUSTER,
        "kubeconfig": str(sim.kubeconfig),
        "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(store)}}},
    }
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(json.dumps({"clusters": [cluster]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return sim, etl, store
