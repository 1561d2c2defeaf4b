"""The federate DAG end to end in a real Airflow (SQLite, dag.test()): two simulated clusters federating
into one moto bucket, then a no-change run, then a bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.etl_trees import add_federation_extras, make_etl_dir, tree_digests

from .dag_loading import load_dag

BUCKET = "dag-federated"


def task_states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


@pytest.fixture
def s3(moto_s3_server):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def write_config(tmp_path, moto_s3_server, clusters, store_config=None) -> Path:
    store = tmp_path / "federated-store.yaml"
    store.write_text(
        yaml.safe_dump(
            {
                "type": "S3",
                "prefix": "kc",
                "config": {
                    "bucket": BUCKET,
                    "endpoint": moto_s3_server.url.split("://", 1)[1],
                    "insecure": True,
                    "region": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    **(store_config or {}),
                },
            }
        )
    )
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "federate_schedule": "*/5 * * * *",
                "defaults": {"federated": {"object_store": {"config_file": str(store)}}},
                "clusters": clusters,
            }
        )
    )
    return config


def keys(s3) -> list[str]:
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]


@pytest.mark.slow
def test_two_clusters_federate_into_one_bucket_then_nothing_changes(
    airflow_db, tmp_path, monkeypatch, simulator, s3, moto_s3_server
):
    import time

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    trees = {}
    for name in ("east", "west"):
        trees[name] = make_etl_dir(tmp_path / name, days=3, hourly_hours=4, file_bytes=2000)
        add_federation_extras(trees[name], time.time(), large_bytes=6 << 20)
    east, west = simulator(trees["east"]), simulator(trees["west"])
    config = write_config(
        tmp_path,
        moto_s3_server,
        [
            {"id": "east", "kubeconfig": str(east.kubeconfig)},
            {"id": "west", "kubeconfig": str(west.kubeconfig), "federated": {"cluster_id": "west-2"}},
        ],
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    run = load_dag("kubecost_etl_federate", retries=0).test()

    states = task_states(run)
    assert run.state == "success", states
    for cluster_key, tree in (("federated/east", trees["east"]), ("federated/west-2", trees["west"])):
        base = f"kc/{cluster_key}/etl/"
        got = {k[len(base) :]: k for k in keys(s3) if k.startswith(base + "bingen/")}
        expected = {p for p in tree_digests(tree) if p.startswith("bingen/")}
        assert set(got) == expected
        assert f"kc/{cluster_key}/kubecost-etl-owner.json" in keys(s3)
    with create_session() as session:
        uris = sorted(e.asset.uri.rstrip("/") for e in session.query(AssetEvent).all())  # Airflow adds a "/"
    # Other tests share this Airflow database: only this DAG's kind of event counts here.
    assert [u for u in uris if u.startswith("kubecost-federated://")] == [
        "kubecost-federated://east",
        "kubecost-federated://west",
    ]

    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    run = load_dag("kubecost_etl_federate", retries=0).test()
    assert run.state == "success"
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert after == before  # nothing rewritten


@pytest.mark.slow
def test_a_duplicate_federated_cluster_id_fails_first_and_writes_nothing(
    airflow_db, tmp_path, monkeypatch, simulator, s3, moto_s3_server
):
    sim = simulator()
    config = write_config(
        tmp_path,
        moto_s3_server,
        [
            {"id": "east", "kubeconfig": str(sim.kubeconfig)},
            {"id": "west", "kubeconfig": str(sim.kubeconfig), "federated": {"cluster_id": "east"}},
        ],
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    run = load_dag("kubecost_etl_federate", retries=0).test()

    states = task_states(run)
    assert run.state == "failed"
    assert states[("select_clusters", -1)] == "failed"
    assert keys(s3) == []
