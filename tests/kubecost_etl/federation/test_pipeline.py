"""Federated pushes from the cluster simulator into real buckets, read back with the raw SDKs."""

from __future__ import annotations

import hashlib
import os

import pytest
from kubecost_etl.federation.layout import FederatedLayout
from kubecost_etl.federation.owner import Owner, OwnerConflict
from kubecost_etl.federation.pipeline import federate
from kubecost_etl.federation.plan import FederatePlan, FederationRefused, plan_push
from kubecost_etl.federation.push import push_files
from kubecost_etl.federation.retention import apply_retention
from kubecost_etl.federation.settings import Layout
from kubecost_etl.kube.target import ExecTarget

from tests.etl_trees import tree_digests

from .conftest import ME, USER_PREFIX, settings


def bucket_digests(bucket, root: str) -> dict[str, str]:
    """Every object under ``<prefix>/<root>etl/bingen/``, read with the raw SDK, by ETL-relative path."""
    base = f"{USER_PREFIX}/{root}etl/"
    return {
        name[len(base) :]: hashlib.sha256(bucket.raw_read(name)).hexdigest()
        for name in bucket.raw_names()
        if name.startswith(base + "bingen/")
    }


def carried_digests(etl_dir) -> dict[str, str]:
    return {path: digest for path, digest in tree_digests(etl_dir).items() if path.startswith("bingen/")}


def test_push_is_exact_then_incremental(bucket, cluster):
    pushed, report, _ = federate(cluster.core, cluster.target, bucket.store, settings(), "prod-east", ME)

    assert report.ok, report.problems
    expected = carried_digests(cluster.etl_dir)
    assert bucket_digests(bucket, "federated/prod-east/") == expected  # every key and byte, raw
    assert {cluster.extras[r] for r in ("extra_pipeline", "weekly", "empty_set", "prefixed", "large")} <= set(
        expected
    )
    assert "readme.txt" not in {p["path"] for p in pushed.pushed}  # outside bingen/: no federated key
    assert report.coverage["networkinsights"]["1d"]["files"] == 1
    assert report.coverage["allocations"]["1w"] == {
        **report.coverage["allocations"]["1w"],
        "files": 1,
        "days": 7,
    }
    stat = bucket.store.stat(f"federated/prod-east/etl/{cluster.extras['large']}")
    assert stat.size > 2 * (5 << 20) and stat.metadata["kcetlsha256"] == expected[cluster.extras["large"]]

    bucket.reset()
    pushed, report, _ = federate(cluster.core, cluster.target, bucket.store, settings(), "prod-east", ME)
    assert report.ok and pushed.pushed == ()
    assert bucket.writes() == []  # counted on the wire: no PUT, POST or DELETE at all

    changed = (
        cluster.etl_dir
        / "bingen"
        / "allocations"
        / "1d"
        / sorted(os.listdir(cluster.etl_dir / "bingen" / "allocations" / "1d"))[0]
    )
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF  # same size, new bytes, new mtime
    changed.write_bytes(bytes(data))
    os.utime(changed, (cluster.now + 5, cluster.now + 5))
    bucket.reset()
    pushed, report, _ = federate(cluster.core, cluster.target, bucket.store, settings(), "prod-east", ME)
    assert report.ok, report.problems
    assert [p["path"] for p in pushed.pushed] == [changed.relative_to(cluster.etl_dir).as_posix()]
    data_writes = [w for w in bucket.writes() if "kubecost-etl-index.json" not in w[1]]
    assert len(data_writes) == 1, bucket.writes()
    # Only S3, whose listing carries no metadata, also rewrites its small index object, once.
    assert len(bucket.writes()) == (2 if bucket.kind == "s3" else 1)
    assert bucket_digests(bucket, "federated/prod-east/") == carried_digests(cluster.etl_dir)


def test_durable_layout_and_filesystem_store(fs_bucket, cluster):
    pushed, report, _ = federate(
        cluster.core, cluster.target, fs_bucket.store, settings(layout=Layout.DURABLE), "prod-east", ME
    )
    assert report.ok, report.problems
    assert bucket_digests(fs_bucket, "") == carried_digests(cluster.etl_dir)
    assert not any(n.startswith(f"{USER_PREFIX}/federated/") for n in fs_bucket.raw_names())
    assert not any(".kubecost-etl-partial" in n for n in fs_bucket.raw_names())


def test_retention_deletes_exactly_the_old_hourly_files_and_keeps_what_left_the_pod(s3_bucket, cluster):
    federate(cluster.core, cluster.target, s3_bucket.store, settings(), "prod-east", ME)
    before = bucket_digests(s3_bucket, "federated/prod-east/")
    gone = cluster.etl_dir / cluster.extras["extra_pipeline"]
    gone.unlink()  # Kubecost dropped it from the pod: the bucket keeps it

    policy = {"1h": "1d"}
    cutoff = cluster.now - 86400
    old_hourly = {p for p in before if p.split("/")[2] == "1h" and int(p.rsplit("-", 1)[1]) < cutoff}
    assert old_hourly and len(old_hourly) < sum(p.split("/")[2] == "1h" for p in before)

    result = apply_retention(s3_bucket.store, settings(retention=policy), "prod-east", ME, now=cluster.now)
    after = bucket_digests(s3_bucket, "federated/prod-east/")
    assert set(before) - set(after) == old_hourly
    assert {k.split("/etl/", 1)[1] for k in result.deleted} == old_hourly
    assert cluster.extras["extra_pipeline"] in after

    # The next push does not bring the expired hourly files back, nor delete anything else.
    s3_bucket.reset()
    pushed, report, again = federate(
        cluster.core,
        cluster.target,
        s3_bucket.store,
        settings(retention=policy),
        "prod-east",
        ME,
        now=cluster.now,
    )
    assert report.ok, report.problems
    assert pushed.pushed == () and again.deleted == ()
    assert bucket_digests(s3_bucket, "federated/prod-east/") == after


def test_a_second_writer_is_refused_naming_both_unless_it_takes_over(s3_bucket, cluster):
    federate(cluster.core, cluster.target, s3_bucket.store, settings(), "prod-east", ME)
    other = Owner("prod-west", "install-b")
    s3_bucket.reset()
    with pytest.raises(OwnerConflict) as refused:
        federate(cluster.core, cluster.target, s3_bucket.store, settings(), "prod-west", other)
    message = str(refused.value)
    assert "'prod-east'" in message and "'install-a'" in message and "'prod-west'" in message
    assert "take_over" in message
    assert s3_bucket.writes() == []  # refused before any write

    pushed, report, _ = federate(
        cluster.core, cluster.target, s3_bucket.store, settings(take_over=True), "prod-west", other
    )
    assert report.ok
    marker = FederatedLayout(Layout.FEDERATED, "prod-east").owner_key
    assert b'"prod-west"' in s3_bucket.store.read_bytes(marker)
    with pytest.raises(OwnerConflict):
        federate(cluster.core, cluster.target, s3_bucket.store, settings(), "prod-east", ME)


def test_a_pod_without_the_etl_dir_is_refused_before_any_write(s3_bucket, cluster):
    wrong = ExecTarget(cluster.target.pod, cluster.target.container, "/var/configs/db/nothing-here")
    with pytest.raises(FederationRefused, match=r"cluster 'prod-east': etl_path: .*nothing-here"):
        plan_push(cluster.core, wrong, s3_bucket.store, settings(), "prod-east", ME)
    assert s3_bucket.writes() == [] and s3_bucket.raw_names() == []


def test_a_missing_bucket_is_refused_naming_cluster_and_field(moto_s3_server, cluster):
    from kubecost_etl.storage.s3 import S3Store

    store = S3Store(moto_s3_server.client(), "no-such-bucket-here", USER_PREFIX)
    with pytest.raises(
        FederationRefused, match=r"cluster 'prod-east': federated\.object_store: .*NoSuchBucket"
    ):
        plan_push(cluster.core, cluster.target, store, settings(), "prod-east", ME)


def test_a_file_changing_while_read_is_read_again(fs_bucket, cluster):
    plan = plan_push(cluster.core, cluster.target, fs_bucket.store, settings(), "prod-east", ME)
    victim = cluster.extras["large"]
    path = cluster.etl_dir / victim
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # after the plan hashed it: the push sees other bytes
    path.write_bytes(bytes(data))
    pushed = push_files(cluster.core, cluster.target, fs_bucket.store, settings(), plan, ME)
    assert victim in pushed.reread
    key = f"{USER_PREFIX}/federated/prod-east/etl/{victim}"
    assert fs_bucket.raw_read(key) == bytes(data)
    assert (
        fs_bucket.store.stat(key.split("/", 1)[1]).metadata["kcetlsha256"] == hashlib.sha256(data).hexdigest()
    )


def test_plan_round_trips_through_json(fs_bucket, cluster):
    import json

    plan = plan_push(cluster.core, cluster.target, fs_bucket.store, settings(), "prod-east", ME)
    assert FederatePlan.from_dict(json.loads(json.dumps(plan.as_dict()))) == plan
