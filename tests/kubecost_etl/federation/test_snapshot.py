"""Backing up federated storage (backup.source: federated) into the content-addressed repository."""

from __future__ import annotations

import hashlib

from kubecost_etl.backup.commit import commit_snapshot
from kubecost_etl.config import BackupSettings, ObjectStoreRef
from kubecost_etl.federation.pipeline import federate
from kubecost_etl.federation.snapshot import plan_from_bucket, stream_from_bucket
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.snapshots.verify import verify_snapshot
from kubecost_sim.bingen import encode_empty_set

from tests.etl_trees import tree_digests

from ..backup.test_pipeline import snapshot_digests
from .conftest import ME, settings


def back_up_bucket(bucket_store, repo_store, federated):
    backup = BackupSettings(object_store=ObjectStoreRef(inline={}), source="federated")
    repo = Repository(repo_store, "cluster-a")
    plan = plan_from_bucket(bucket_store, federated, repo, backup)
    streamed = stream_from_bucket(bucket_store, federated, repo, plan.transfer, backup)
    manifest = commit_snapshot(repo, plan, streamed, {"federated": bucket_store.description})
    return manifest, verify_snapshot(repo, manifest.snapshot_id, full=True)


def test_snapshot_of_the_federated_copy_equals_the_pod_and_is_incremental(s3_bucket, fs_bucket, cluster):
    federate(cluster.core, cluster.target, s3_bucket.store, settings(), "prod-east", ME)
    # An object Kubecost's own agent wrote: no metadata of ours, hashed by reading it once.
    foreign, foreign_bytes = (
        "bingen/allocations/1d/86400-172800",
        encode_empty_set("allocations", 86400, 172800),
    )
    s3_bucket.store.put_bytes(f"federated/prod-east/etl/{foreign}", foreign_bytes)

    manifest, report = back_up_bucket(s3_bucket.store, fs_bucket.store, settings())
    assert report["ok"], report["problems"]
    expected = {p: d for p, d in tree_digests(cluster.etl_dir).items() if p.startswith("bingen/")}
    expected[foreign] = hashlib.sha256(foreign_bytes).hexdigest()
    assert snapshot_digests(fs_bucket.store, manifest.snapshot_id) == expected
    assert manifest.stats["transferred_files"] == len(expected)

    again, report = back_up_bucket(s3_bucket.store, fs_bucket.store, settings())
    assert report["ok"] and again.stats["transferred_files"] == 0
    assert snapshot_digests(fs_bucket.store, again.snapshot_id) == expected
