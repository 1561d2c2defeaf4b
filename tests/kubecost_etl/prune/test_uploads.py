"""Unfinished uploads killed runs left (S3 multipart uploads, partial files) are aborted by prune when
older than the margin, only under the cluster's own repository; a dry run lists them and aborts none."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubecost_etl.prune.gc import prune
from kubecost_etl.prune.settings import RetentionSettings
from kubecost_etl.snapshots.repository import Repository

from ..stores_under_test import STORE_PREFIX, make_filesystem, make_s3
from .helpers import CLUSTER, ROOT

OURS = ROOT + "objects/sha256/ab/" + "ab" * 32 + ".zst"
OTHERS = "kubecost-etl-backup/other-cluster/objects/sha256/cd/" + "cd" * 32 + ".zst"


def start_upload(kind, under_test, key):
    if kind == "s3":
        client, bucket = under_test.store.client, under_test.store.bucket
        upload = client.create_multipart_upload(Bucket=bucket, Key=f"{STORE_PREFIX}/{key}")
        client.upload_part(
            Bucket=bucket,
            Key=f"{STORE_PREFIX}/{key}",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x" * 1024,
        )
    else:
        path = under_test.store.root / STORE_PREFIX / key
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f".{path.name}.killed.kubecost-etl-partial").write_bytes(b"half a file")


def pending(kind, under_test) -> list[str]:
    if kind == "s3":
        return sorted(k.removeprefix(STORE_PREFIX + "/") for k in under_test.pending_uploads())
    return sorted(
        n.removeprefix(STORE_PREFIX + "/") for n in under_test.raw_names() if n.endswith("-partial")
    )


@pytest.mark.parametrize("kind", ["s3", "filesystem"])
def test_stale_uploads_under_the_repository_are_aborted(kind, request, unique_bucket_name, tmp_path):
    under_test = (
        make_s3(request.getfixturevalue("moto_s3_server"), unique_bucket_name)
        if kind == "s3"
        else make_filesystem(tmp_path / "root")
    )
    repo = Repository(under_test.store, CLUSTER)
    for key in (OURS, OTHERS):
        start_upload(kind, under_test, key)
    before = pending(kind, under_test)
    assert len(before) == 2

    # Clocks relative to the upload's own start (moto reports one fixed time for every upload).
    [started] = {u.initiated for u in under_test.store.list_pending_uploads(ROOT)}
    margin = RetentionSettings(keep_last=1).margin
    young = prune(
        repo, RetentionSettings(keep_last=1), dry_run=False, now=started + margin - timedelta(seconds=1)
    )
    assert young.uploads_checked and young.uploads_aborted == ()  # started less than the margin ago
    assert pending(kind, under_test) == before
    later = started + margin + timedelta(seconds=1)
    dry = prune(repo, RetentionSettings(keep_last=1), dry_run=True, now=later)
    assert dry.uploads_aborted == (OURS.removeprefix(ROOT),) and pending(kind, under_test) == before
    done = prune(repo, RetentionSettings(keep_last=1), dry_run=False, now=later)

    assert done.uploads_aborted == dry.uploads_aborted
    assert [p for p in pending(kind, under_test) if p.startswith(ROOT)] == []
    assert len([p for p in pending(kind, under_test) if "other-cluster" in p]) == 1  # not ours: left alone
