"""Importing tarballs into the repository: Kubecost's own download-etl.sh archive (then restored byte for
byte), every accepted root, a share bundle round trip, and hostile or broken archives refused with
nothing written."""

from __future__ import annotations

import gzip
import subprocess
import tarfile

import pytest
from airflow.sdk.exceptions import AirflowFailException
from kubecost_etl.airflow.stages import share as stages
from kubecost_etl.snapshots.repository import Repository
from kubecost_sim import bingen

from tests.etl_trees import tree_digests
from tests.kubecost_etl.airflow.stages import test_restore
from tests.kubecost_etl.share.env import CLUSTER, download_etl_archive, make_env, member, sha256, tar_gz
from tests.kubecost_etl.stores_under_test import STORE_PREFIX

GOOD = bingen.encode_empty_set("allocations", 1_700_000_000, 1_700_086_400)
GOOD_PATH = "kc-etl-tmp/bingen/allocations/1d/1700000000-1700086400"


@pytest.fixture
def env(request, tmp_path, monkeypatch, simulator):
    return make_env(request, tmp_path, monkeypatch, simulator)


def import_archive(key: str) -> dict:
    return stages.record_archive(stages.check_archive(CLUSTER, key))


def snapshot_files(env, snapshot_id: str) -> dict[str, str]:
    return {f.path: f.sha256 for f in Repository(env.store, CLUSTER).load_manifest(snapshot_id).files}


def test_a_download_etl_archive_imports_as_a_verified_snapshot_and_restores_byte_identical(env, tmp_path):
    original = tree_digests(env.etl)
    archive = download_etl_archive(env.etl, tmp_path / "download")
    key = env.upload("uploads/kubecost-etl.tar.gz", archive)  # outside the store's prefix: a full key

    result = import_archive(key)

    repo = Repository(env.store, CLUSTER)
    manifest = repo.load_manifest(result["snapshot_id"])
    assert manifest.source["kind"] == "archive" and manifest.source["key"] == key
    assert manifest.source["sha256"] == sha256(archive) and manifest.source["root"] == "kc-etl-tmp/"
    assert snapshot_files(env, result["snapshot_id"]) == original
    assert repo.load_verification(result["snapshot_id"])["ok"] is True
    assert repo.latest_good() == result["snapshot_id"]

    for path in sorted(env.etl.rglob("*"))[-3:]:
        if path.is_file():
            path.write_bytes(b"BGST broken")
    outcome = test_restore.restore(
        test_restore.Env(env.sim, env.etl, env.store), snapshot=result["snapshot_id"], restart=False
    )
    assert outcome.failure is None, outcome.failure
    assert tree_digests(env.etl) == original


@pytest.mark.parametrize(
    ("root", "arguments"),
    [
        ("etl/", ["-C", "{parent}", "etl"]),
        ("./", ["-C", "{etl}", "."]),
        ("", ["-C", "{etl}", "bingen"]),
        ("./kc-etl-tmp/", ["-C", "{parent}", "--transform", "s,^\\./etl,./kc-etl-tmp,", "./etl"]),
    ],
)
def test_every_accepted_root_gives_the_same_files(env, tmp_path, root, arguments):
    original = tree_digests(env.etl)
    out = tmp_path / "a.tar.gz"
    subprocess.run(
        ["tar", "czf", str(out), *(a.format(parent=env.etl.parent, etl=env.etl) for a in arguments)],
        check=True,
    )
    checked = stages.check_archive(CLUSTER, env.upload("uploads/a.tar.gz", out.read_bytes()))
    assert checked["root"] == root
    result = stages.record_archive(checked)
    assert snapshot_files(env, result["snapshot_id"]) == original


def test_a_share_bundle_imported_back_gives_the_same_files(env):
    request = stages.preflight(CLUSTER, None, "pod", [], [])
    bundle = stages.bundle(request)

    checked = stages.check_archive(CLUSTER, f"{STORE_PREFIX}/{bundle['key']}")  # as the bucket lists it
    assert checked["sums_checked"] is True and checked["sha256"] == bundle["sha256"]
    result = stages.record_archive(checked)

    assert snapshot_files(env, result["snapshot_id"]) == tree_digests(env.etl)
    assert (
        stages.record_archive(checked)["snapshot_id"] == result["snapshot_id"]
    )  # a retry: the same snapshot
    assert Repository(env.store, CLUSTER).snapshot_ids() == [result["snapshot_id"]]


def _sparse_10_gb(tmp_path) -> bytes:
    root = tmp_path / "sparse"
    (root / "kc-etl-tmp" / "bingen" / "allocations" / "1d").mkdir(parents=True)
    subprocess.run(["truncate", "-s", "10G", str(root / GOOD_PATH)], check=True)
    subprocess.run(["tar", "-cSzf", "a.tar.gz", "kc-etl-tmp"], cwd=root, check=True)  # GNU sparse member
    return (root / "a.tar.gz").read_bytes()


def _claims_10_gb(_tmp_path) -> bytes:
    header = tarfile.TarInfo("kc-etl-tmp/bingen/allocations/1d/1700086400-1700172800")
    header.size = 10 << 30
    return gzip.compress(header.tobuf(tarfile.GNU_FORMAT) + b"\0" * 4096)


def _with(*members):
    return lambda _tmp_path: tar_gz(
        [member(GOOD_PATH, GOOD), *members]
    )  # a good file first, then the bad one


def _plain_tar(tmp_path) -> bytes:
    return gzip.decompress(_with()(tmp_path))


def _truncated(tmp_path) -> bytes:
    whole = tar_gz(
        [member(GOOD_PATH, GOOD), member(GOOD_PATH.replace("1d/", "1d/x"), bytes(range(256)) * 400)]
    )
    return whole[: len(whole) // 2]


def _damaged_header(_tmp_path) -> bytes:
    return tar_gz([member(GOOD_PATH, b"BGSX" + GOOD[4:])])


HOSTILE = {
    "dot-dot": (_with(member("kc-etl-tmp/../x", b"x")), "'..' in the path"),
    "absolute": (_with(member("/etc/x", b"x")), "absolute path"),
    "symlink": (
        _with(member("kc-etl-tmp/bingen/allocations/1d/l", kind=tarfile.SYMTYPE, linkname="/etc/passwd")),
        "a symbolic link",
    ),
    "hardlink": (
        _with(member("kc-etl-tmp/bingen/allocations/1d/h", kind=tarfile.LNKTYPE, linkname=GOOD_PATH)),
        "a hard link",
    ),
    "device": (
        _with(member("kc-etl-tmp/bingen/allocations/1d/d", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)),
        "a device or fifo",
    ),
    "fifo": (_with(member("kc-etl-tmp/bingen/allocations/1d/f", kind=tarfile.FIFOTYPE)), "a device or fifo"),
    "outside bingen": (_with(member("kc-etl-tmp/other/x", b"x")), "not under bingen/"),
    "second root": (_with(member("etl/bingen/assets/1d/1-2", GOOD)), "a second root"),
    "unknown root": (lambda _: tar_gz([member("home/bingen/x", GOOD)]), "unknown root 'home'"),
    "twice": (_with(member(GOOD_PATH, GOOD)), "holds this path twice"),
    "sparse 10 GB": (_sparse_10_gb, "a sparse member claiming 10737418240 bytes"),
    "10 GB claim": (_claims_10_gb, "it claims 10737418240 bytes"),
    "not gzip": (_plain_tar, "is not a gzip archive"),
    "truncated": (_truncated, "truncated"),
    "damaged header": (_damaged_header, "damaged bingen header"),
    "no files": (lambda _: tar_gz([member("kc-etl-tmp/bingen/", kind=tarfile.DIRTYPE)]), "holds no files"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_and_broken_archives_are_refused_with_nothing_written(env, tmp_path, case):
    build, expected = HOSTILE[case]
    key = env.upload(f"uploads/{case.replace(' ', '-')}.tar.gz", build(tmp_path))

    with pytest.raises(AirflowFailException) as refused:
        stages.check_archive(CLUSTER, key)

    assert expected in str(refused.value) and key in str(refused.value)
    assert env.repository_objects() == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("uploads/missing.tar.gz", "archive 'uploads/missing.tar.gz' does not exist in"),
        ("uploads/../etc/passwd", "invalid object key"),
        ("", "give the full object key"),
    ],
)
def test_a_missing_or_malformed_archive_key_is_refused(env, key, expected):
    with pytest.raises(AirflowFailException, match="check_archive") as refused:
        stages.check_archive(CLUSTER, key)
    assert expected in str(refused.value)
    assert env.repository_objects() == []


def test_an_archive_replaced_between_the_passes_commits_nothing(env, tmp_path):
    key = env.upload("uploads/a.tar.gz", download_etl_archive(env.etl, tmp_path / "one"))
    checked = stages.check_archive(CLUSTER, key)
    (env.etl / "bingen" / "assets" / "1d").iterdir().__next__().write_bytes(GOOD)
    env.upload(key, download_etl_archive(env.etl, tmp_path / "two"))

    with pytest.raises(AirflowFailException, match="changed since it was checked"):
        stages.record_archive(checked)
    assert Repository(env.store, CLUSTER).snapshot_ids() == []


def test_a_bundle_whose_manifest_is_larger_than_its_files_imports(request, tmp_path, monkeypatch, simulator):
    env = make_env(
        request, tmp_path, monkeypatch, simulator, days=40, hourly_hours=24, file_bytes=200
    )  # seen in the benchmark
    bundle = stages.bundle(stages.preflight(CLUSTER, None, "pod", [], []))
    assert max(p.stat().st_size for p in env.etl.rglob("*") if p.is_file()) < len(
        env.store.read_bytes(bundle["manifest_key"])
    )

    result = import_archive(f"{STORE_PREFIX}/{bundle['key']}")

    assert snapshot_files(env, result["snapshot_id"]) == tree_digests(env.etl)
