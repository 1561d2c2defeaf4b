"""kubecost_etl_restore with `source: federated` / `durable` in a real Airflow (dag.test) against the
simulator: the federate stages push the pod into a real bucket (moto S3, Azurite), the pod is damaged or
emptied, and the restore gives it back byte-identical; a tampered mirror object and a cluster without a
`federated:` block are refused in one try before anything changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.etl_trees import make_etl_dir, tree_digests

from .dag_loading import load_dag, load_dag_retrying

CLUSTER = "cluster-a"
FEDERATED_ID = "kc-a"


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def tries(run) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in run.get_task_instances()}


def xcom(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)


def files_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def s3_bucket(moto_s3_server, unique_bucket_name):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=unique_bucket_name)
    return client, unique_bucket_name


def s3_store_file(tmp_path: Path, moto_s3_server, bucket: str) -> Path:
    """A federated-store.yaml (Thanos format, with a top-level prefix) for the moto bucket."""
    store = tmp_path / "federated-store.yaml"
    store.write_text(
        yaml.safe_dump(
            {
                "type": "S3",
                "prefix": "kc",
                "config": {
                    "bucket": bucket,
                    "endpoint": moto_s3_server.url.split("://", 1)[1],
                    "insecure": True,
                    "region": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                },
            }
        )
    )
    return store


def configure(tmp_path: Path, monkeypatch, sim, federated: dict | None) -> Path:
    """One cluster; its backup repository (the safety backup's) on a filesystem store."""
    cluster = {
        "id": CLUSTER,
        "kubeconfig": str(sim.kubeconfig),
        "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path / "repo")}}},
    }
    if federated is not None:
        cluster["federated"] = {"cluster_id": FEDERATED_ID, "install_id": "test-install", **federated}
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(json.dumps({"clusters": [cluster]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return tmp_path / "repo"


def federate_once() -> None:
    from kubecost_etl.airflow.stages import federate

    target = federate.find_pod(CLUSTER)
    plan = federate.plan(CLUSTER, target)
    pushed = federate.push(CLUSTER, target, plan)
    assert federate.verify(CLUSTER, target, plan, pushed, full=True)["ok"]


@pytest.mark.slow
def test_federated_mirror_on_s3_gives_a_damaged_pod_back_byte_identical(
    airflow_db, tmp_path, monkeypatch, simulator, moto_s3_server, s3_bucket
):
    client, bucket = s3_bucket
    etl = make_etl_dir(tmp_path / "pvc", days=4, hourly_hours=6, file_bytes=20_000, seed=5)
    pushed = tree_digests(etl)
    sim = simulator(etl)
    configure(
        tmp_path,
        monkeypatch,
        sim,
        {"object_store": {"config_file": str(s3_store_file(tmp_path, moto_s3_server, bucket))}},
    )
    federate_once()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"kc/federated/{FEDERATED_ID}/etl/{sorted(pushed)[0]}" in keys

    files = sorted(p for p in etl.rglob("*") if p.is_file())
    files[0].unlink()
    files[1].write_bytes(b"BGST damaged")
    (etl / "bingen" / "allocations" / "1d" / "stray-file").write_bytes(b"not in the mirror")
    pod = sim.cost_model_pod()

    run = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "source": "federated"}
    )

    assert run.state == "success", states(run)
    assert states(run)["safety_backup"] == "success" and states(run)["post_check"] == "success"
    assert tree_digests(etl) == pushed
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]  # no staging or previous dir left
    assert sim.cost_model_pod() != pod  # replace restarts by default
    verified = xcom(run, "verify_snapshot")
    assert verified["verified_by_metadata"] == len(pushed) and verified["unverifiable_against_metadata"] == 0


@pytest.mark.slow
def test_durable_mirror_on_azurite_fills_an_emptied_pod(
    airflow_db, tmp_path, monkeypatch, simulator, azurite_server, unique_bucket_name
):
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(azurite_server.connection_string()).create_container(
        unique_bucket_name
    )
    etl = make_etl_dir(tmp_path / "pvc", days=3, hourly_hours=5, file_bytes=12_000, seed=6)
    pushed = tree_digests(etl)
    sim = simulator(etl)
    store = {
        "type": "AZURE",
        "prefix": "mirror",
        "config": {
            "container": unique_bucket_name,
            "storage_connection_string": azurite_server.connection_string(),
        },
    }
    configure(tmp_path, monkeypatch, sim, {"object_store": store, "layout": "durable"})
    federate_once()
    assert f"mirror/etl/{sorted(pushed)[0]}" in [b.name for b in container.list_blobs()]

    shutil.rmtree(etl / "bingen")  # the cache is lost; the ETL dir itself stays
    dry = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "source": "durable", "mode": "fill-missing", "dry_run": True}
    )
    assert dry.state == "success" and states(dry)["stage"] == "skipped", states(dry)
    assert len(xcom(dry, "plan")["add"]) == len(pushed) and tree_digests(etl) == {}

    run = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "source": "durable", "mode": "fill-missing"}
    )

    assert run.state == "success", states(run)
    assert states(run)["safety_backup"] == "skipped"  # nothing in the pod to back up
    assert states(run)["restart"] == "skipped"  # fill-missing does not restart unless asked
    assert tree_digests(etl) == pushed

    # The other layout holds nothing for this cluster: refused, naming the layout the config writes.
    wrong = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "source": "federated"}
    )
    assert wrong.state == "failed" and states(wrong)["preflight"] == "failed"
    assert tree_digests(etl) == pushed


@pytest.mark.slow
def test_a_tampered_mirror_object_is_refused_before_the_pod_changes(
    airflow_db, tmp_path, monkeypatch, simulator, moto_s3_server, s3_bucket
):
    client, bucket = s3_bucket
    etl = make_etl_dir(tmp_path / "pvc", days=3, hourly_hours=4, file_bytes=10_000, seed=7)
    sim = simulator(etl)
    repo = configure(
        tmp_path,
        monkeypatch,
        sim,
        {"object_store": {"config_file": str(s3_store_file(tmp_path, moto_s3_server, bucket))}},
    )
    federate_once()
    victim = f"kc/federated/{FEDERATED_ID}/etl/{files_in(etl)[2]}"
    head = client.head_object(Bucket=bucket, Key=victim)
    body = client.get_object(Bucket=bucket, Key=victim)["Body"].read()
    tampered = body[:-1] + bytes([body[-1] ^ 0xFF])  # same size, same metadata, other bytes
    assert hashlib.sha256(tampered).hexdigest() != head["Metadata"]["kcetlsha256"]
    client.put_object(Bucket=bucket, Key=victim, Body=tampered, Metadata=head["Metadata"])
    (etl / files_in(etl)[0]).write_bytes(b"BGST damaged")  # the pod needs a restore
    before = tree_digests(etl)
    repo_before = files_in(repo) if repo.exists() else []

    run = load_dag_retrying("kubecost_etl_restore").test(run_conf={"cluster": CLUSTER, "source": "federated"})

    assert run.state == "failed", states(run)
    assert (
        states(run)["verify_snapshot"] == "failed" and tries(run)["verify_snapshot"] == 1
    )  # a refusal: no retry
    for task in ("plan", "stage", "safety_backup", "swap", "post_check"):
        assert states(run)[task] == "upstream_failed", states(run)
    assert tree_digests(etl) == before and sorted(p.name for p in etl.parent.iterdir()) == ["etl"]
    assert [f for f in files_in(repo) if not f.startswith("kubecost-etl-leases/")] == [
        f for f in repo_before if not f.startswith("kubecost-etl-leases/")
    ]
    assert states(run)["release_lease"] == "success"

    from airflow.sdk.exceptions import AirflowFailException
    from kubecost_etl.airflow.stages import restore as stages

    ctx = stages.preflight(
        CLUSTER, "latest", "replace", None, False, "manual__y", datetime.now(UTC), source="federated"
    )
    with pytest.raises(AirflowFailException) as refused:
        stages.verify_snapshot(ctx)
    assert f"cluster '{CLUSTER}'" in str(refused.value) and victim.removeprefix("kc/") in str(refused.value)
    assert "differs from its metadata sha256" in str(refused.value)


@pytest.mark.slow
def test_source_federated_without_a_federated_block_is_refused_before_anything(
    airflow_db, tmp_path, monkeypatch, simulator
):
    etl = make_etl_dir(tmp_path / "pvc", days=2, hourly_hours=3, file_bytes=5_000, seed=8)
    sim = simulator(etl)
    repo = configure(tmp_path, monkeypatch, sim, None)
    before = tree_digests(etl)

    run = load_dag_retrying("kubecost_etl_restore").test(run_conf={"cluster": CLUSTER, "source": "federated"})

    assert run.state == "failed", states(run)
    assert states(run)["preflight"] == "failed" and tries(run)["preflight"] == 1
    assert states(run)["acquire_lease"] == "upstream_failed"  # no lease taken, nothing written anywhere
    assert tree_digests(etl) == before and sorted(p.name for p in etl.parent.iterdir()) == ["etl"]
    assert not repo.exists() or files_in(repo) == []

    from airflow.sdk.exceptions import AirflowFailException
    from kubecost_etl.airflow.stages import restore as stages

    with pytest.raises(AirflowFailException, match=rf"cluster '{CLUSTER}': federated: not configured"):
        stages.preflight(
            CLUSTER, "latest", "replace", None, False, "manual__x", datetime.now(UTC), source="federated"
        )
    with pytest.raises(
        AirflowFailException, match=r"source: 'mirror' is not one of \['snapshot', 'federated'"
    ):
        stages.preflight(
            CLUSTER, "latest", "replace", None, False, "manual__x", datetime.now(UTC), source="mirror"
        )
    with pytest.raises(AirflowFailException, match="names a snapshot, but source durable restores"):
        stages.preflight(
            CLUSTER,
            "20260101T000000Z",
            "replace",
            None,
            False,
            "manual__x",
            datetime.now(UTC),
            source="durable",
        )
    assert tree_digests(etl) == before


@pytest.mark.slow
def test_a_durable_mirror_kubecost_wrote_without_metadata_is_restored_hashed_as_read(
    airflow_db, tmp_path, monkeypatch, simulator
):
    etl = make_etl_dir(tmp_path / "pvc", days=3, hourly_hours=4, file_bytes=8_000, seed=9)
    pushed = tree_digests(etl)
    bucket = tmp_path / "durable-bucket"
    shutil.copytree(
        etl / "bingen", bucket / "backups" / "etl" / "bingen"
    )  # as Kubecost's own mirror: no metadata
    sim = simulator(etl)
    store = {"type": "FILESYSTEM", "prefix": "backups", "config": {"directory": str(bucket)}}
    configure(tmp_path, monkeypatch, sim, {"object_store": store, "layout": "durable"})
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    files[0].write_bytes(b"BGST damaged")
    files[-1].unlink()

    run = load_dag("kubecost_etl_restore", retries=0).test(
        run_conf={"cluster": CLUSTER, "source": "durable", "restart": False}
    )

    assert run.state == "success", states(run)
    assert tree_digests(etl) == pushed
    verified = xcom(run, "verify_snapshot")
    assert verified["unverifiable_against_metadata"] == len(pushed) and verified["verified_by_metadata"] == 0


@pytest.mark.slow
def test_a_mirror_object_replaced_after_verification_fails_the_stage_once_and_changes_nothing(
    airflow_db, tmp_path, monkeypatch, simulator
):
    from kubecost_etl.airflow.stages import restore as stages

    etl = make_etl_dir(tmp_path / "pvc", days=3, hourly_hours=4, file_bytes=8_000, seed=10)
    sim = simulator(etl)
    bucket = tmp_path / "bucket"
    configure(
        tmp_path,
        monkeypatch,
        sim,
        {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(bucket)}}},
    )
    federate_once()
    (etl / files_in(etl)[0]).write_bytes(b"BGST damaged")
    before = tree_digests(etl)
    victim = bucket / "federated" / FEDERATED_ID / "etl" / files_in(etl)[3]
    real_stage = stages.stage

    def stage_after_a_rewrite(*args, **kwargs):
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0xFF
        victim.write_bytes(bytes(data))  # same size, same metadata sidecar, other bytes
        return real_stage(*args, **kwargs)

    monkeypatch.setattr(stages, "stage", stage_after_a_rewrite)

    run = load_dag_retrying("kubecost_etl_restore").test(run_conf={"cluster": CLUSTER, "source": "federated"})

    assert run.state == "failed", states(run)
    assert states(run)["verify_snapshot"] == "success"
    assert states(run)["stage"] == "failed" and tries(run)["stage"] == 1  # a refusal: not retried
    assert states(run)["swap"] == "upstream_failed" and states(run)["finish"] == "success"
    assert tree_digests(etl) == before
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]  # the staging dir was removed
