"""The lease's Airflow glue: release from the teardown, stale-upload clean-up after acquiring."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kubecost_etl.airflow.lease import clean_stale_uploads, cluster_lease, release
from kubecost_etl.config import load_config
from kubecost_etl.lease import ClusterLease, Holder, LeaseSettings
from kubecost_etl.storage.s3 import S3Store

CLUSTER = "cluster-a"


@pytest.fixture
def configured(tmp_path, monkeypatch):
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(json.dumps({"clusters": [{
        "id": CLUSTER, "kubeconfig": str(tmp_path / "unused.kubeconfig"),
        "backup": {"object_store": {"type": "FILESYSTEM", "config": {"directory": str(tmp_path / "store")}}},
    }]}))  # fmt: skip
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return cluster_lease(load_config().cluster(CLUSTER))


def task_context(map_index: int = -1, try_number: int = 2) -> dict:
    ti = SimpleNamespace(
        dag_id="kubecost_etl_restore", run_id="manual__1", map_index=map_index, try_number=try_number
    )
    return {"ti": ti}


def test_the_teardown_releases_with_the_setups_holder(configured):
    me = Holder("kubecost_etl_restore", "manual__1")
    configured.acquire(me)

    assert release(CLUSTER, me.as_dict(), task_context()) == "released"
    assert configured.read() is None
    assert release(CLUSTER, me.as_dict(), task_context()) == "not held"  # a retried teardown


def test_without_the_setups_result_only_this_tasks_own_lease_is_released(configured):
    # An acquire whose answer was lost: the lease records this task's identity, not a token we know.
    configured.acquire(Holder("kubecost_etl_restore", "manual__1", map_index=-1, try_number=1))
    assert release(CLUSTER, None, task_context()) == "released"

    other = Holder("kubecost_etl_backup", "scheduled__9")
    configured.acquire(other)
    assert release(CLUSTER, None, task_context()) == "not held"
    assert configured.read()[0].holder == other


def test_the_teardown_never_releases_a_lease_taken_over(configured):
    me = Holder("kubecost_etl_restore", "manual__1")
    other = Holder("kubecost_etl_backup", "scheduled__9")
    configured.acquire(other)

    assert release(CLUSTER, me.as_dict(), task_context()).startswith("held by kubecost_etl_backup")
    assert configured.read()[0].holder == other


def test_stale_uploads_of_the_clusters_repository_are_aborted(moto_s3_server, unique_bucket_name):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=unique_bucket_name)
    lease = ClusterLease(S3Store(client, unique_bucket_name, "tenant"), CLUSTER, LeaseSettings())
    killed = client.create_multipart_upload(
        Bucket=unique_bucket_name, Key=f"tenant/kubecost-etl-backup/{CLUSTER}/objects/sha256/aa/x.zst"
    )["UploadId"]
    other_cluster = client.create_multipart_upload(
        Bucket=unique_bucket_name, Key="tenant/kubecost-etl-backup/cluster-b/objects/sha256/bb/y.zst"
    )["UploadId"]

    clean_stale_uploads(lease)  # moto dates every upload 2010: older than any ttl

    left = [
        u["UploadId"] for u in client.list_multipart_uploads(Bucket=unique_bucket_name).get("Uploads", [])
    ]
    assert killed not in left
    assert left == [other_cluster]


def test_a_stage_whose_lease_was_taken_over_fails_without_retry(configured):
    from airflow.sdk.exceptions import AirflowFailException
    from kubecost_etl.airflow.lease import lease_held

    me = Holder("kubecost_etl_restore", "manual__1")
    configured.acquire(Holder("kubecost_etl_backup", "scheduled__9"))
    ran = []

    with pytest.raises(AirflowFailException, match="held by kubecost_etl_backup run scheduled__9"):
        with lease_held(CLUSTER, me.as_dict()):
            ran.append(True)
    assert ran == []


def test_an_upload_a_killed_run_started_after_its_last_renewal_is_aborted_at_once(tmp_path):
    """The next run takes the lease over right after it expired; the killed run had started this upload
    after its last renewal, so it is younger than the ttl. It is still litter: nobody else holds the lease."""
    from kubecost_etl.storage.filesystem import TEMP_SUFFIX, FilesystemStore

    store = FilesystemStore(tmp_path / "store", "")
    directory = tmp_path / "store" / f"kubecost-etl-backup/{CLUSTER}/objects/sha256/aa"
    directory.mkdir(parents=True)
    partial = directory / f".{'a' * 64}.zst.k1ll3d{TEMP_SUFFIX}"
    partial.write_bytes(b"the first part of an object")  # just now: far younger than the ttl
    lease = ClusterLease(store, CLUSTER, LeaseSettings())

    clean_stale_uploads(lease)

    assert not partial.exists()
    assert list(store.list_pending_uploads(f"kubecost-etl-backup/{CLUSTER}/")) == []
