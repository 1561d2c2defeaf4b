"""Share bundles from the simulated pod and from the repository, into real stores, checked with the
system's ``tar xzf`` and ``sha256sum -c``."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request

import pytest
from airflow.sdk.exceptions import AirflowFailException
from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.airflow.stages import share as stages
from kubecost_etl.share.bundle import BUNDLE_NAME, MANIFEST_NAME

from tests.etl_trees import tree_digests
from tests.kubecost_etl.share.env import CLUSTER, add_set_file, make_env, sha256, unpack

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400
_RANGE = re.compile(r"(\d+)-(\d+)$")


@pytest.fixture
def env(request, tmp_path, monkeypatch, simulator):
    return make_env(request, tmp_path, monkeypatch, simulator)


def in_window(path: str, start: int, end: int) -> bool:
    match = _RANGE.search(path)
    return bool(match) and int(match[1]) < end and int(match[2]) > start


def share(window: str | None = None, source: str = "pod", pipelines=(), resolutions=()) -> dict:
    request = stages.preflight(CLUSTER, window, source, list(pipelines), list(resolutions))
    return stages.bundle(request)


def test_a_window_through_the_hourly_store_carries_exactly_its_files(env, tmp_path):
    hour = int(time.time()) // HOUR * HOUR
    start, end = hour - 5 * HOUR, hour - 2 * HOUR
    week = start - start % WEEK
    add_set_file(env.etl, f"bingen/allocations/1w/{week}-{week + WEEK}", week, week + WEEK)  # overlaps
    add_set_file(
        env.etl,
        f"bingen/allocations/1w/{week - 5 * WEEK}-{week - 4 * WEEK}",
        week - 5 * WEEK,
        week - 4 * WEEK,
    )  # does not
    (env.etl / "bingen" / "assets" / "1d" / "notes").write_bytes(b"no range in this name")
    tree = tree_digests(env.etl)
    expected = {p for p in tree if p.startswith("bingen/") and in_window(p, start, end)}
    hourly = [p for p in tree if "/1h/" in p]
    assert 0 < len([p for p in expected if "/1h/" in p]) < len(hourly)  # the window cuts the hourly store
    assert f"bingen/allocations/1w/{week}-{week + WEEK}" in expected

    result = share(f"{start},{end}")

    data = env.store.read_bytes(result["key"])
    assert len(data) == result["size"] and sha256(data) == result["sha256"]
    out = unpack(data, tmp_path / "unpacked")
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "kc-etl-tmp", "manifest.json"]
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(expected)
    assert tree_digests(out / "kc-etl-tmp") == {p: tree[p] for p in expected}
    inner = json.loads((out / "manifest.json").read_text())
    assert inner["cluster"] == CLUSTER and inner["source"]["kind"] == "pod"
    assert inner["window"]["start"] == start and inner["window"]["end"] == end
    assert {f["path"]: f["sha256"] for f in inner["files"]} == {f"kc-etl-tmp/{p}": tree[p] for p in expected}
    assert all(f["range"] and f["size"] > 0 for f in inner["files"])
    assert "bingen/assets/1d/notes: no range in its name, so in no window" in inner["left_out"]
    assert result["files"] == len(expected) and result["days"] == len({start // DAY, (end - 1) // DAY})
    assert result["link"] is None and "local directory" in result["link_note"]
    committed = json.loads(env.store.read_bytes(result["manifest_key"]))
    assert committed["bundle"]["sha256"] == result["sha256"] and committed["bundle"]["size"] == len(data)
    prefix = result["key"].rsplit("/", 1)[0]
    assert [i.key.rsplit("/", 1)[1] for i in env.store.list(prefix + "/")] == [BUNDLE_NAME, MANIFEST_NAME]


def test_files_without_a_range_go_only_into_a_bundle_without_window(env, tmp_path):
    (env.etl / "bingen" / "assets" / "1d" / "notes").write_bytes(b"no range in this name")
    (env.etl / "other").mkdir()
    (env.etl / "other" / "state.json").write_bytes(b"{}")
    tree = tree_digests(env.etl)

    request = stages.preflight(CLUSTER, "", "pod", [], [])
    assert request["window"] is None and request["unranged"] == ["bingen/assets/1d/notes"]
    result = stages.bundle(request)

    out = unpack(env.store.read_bytes(result["key"]), tmp_path / "all")
    carried = tree_digests(out / "kc-etl-tmp")
    assert carried == {p: d for p, d in tree.items() if p.startswith("bingen/")}  # other/ is never carried
    inner = json.loads((out / "manifest.json").read_text())
    assert (
        inner["unranged"] == ["bingen/assets/1d/notes"]
        and "other/state.json: not under bingen/" in inner["left_out"]
    )


def test_a_snapshot_bundle_with_filters_has_a_working_presigned_link(
    request, tmp_path, monkeypatch, simulator
):
    env = make_env(request, tmp_path, monkeypatch, simulator, store_kind="s3")
    snapshot = backup_stages.run_backup(CLUSTER, full_verify=True)["snapshot_id"]
    (env.etl / "bingen" / "assets" / "1d" / "1000-2000").write_bytes(b"written after the backup")

    result = share(source="latest", pipelines=["assets"], resolutions=["1d"])

    with urllib.request.urlopen(result["link"], timeout=30) as answer:  # no credentials: the link is signed
        fetched = answer.read()
    assert sha256(fetched) == result["sha256"] and len(fetched) == result["size"]
    out = unpack(fetched, tmp_path / "linked")
    stored = {f.path: f.sha256 for f in _manifest_files(env, snapshot)}
    assert tree_digests(out / "kc-etl-tmp") == {
        p: d for p, d in stored.items() if p.startswith("bingen/assets/1d/")
    }
    assert result["days"] == 5 and result["files"] == 5 and result["link_expires_at"]
    inner = json.loads((out / "manifest.json").read_text())
    assert inner["source"] == {
        "kind": "snapshot",
        "snapshot_id": snapshot,
        "manifest_sha256": inner["source"]["manifest_sha256"],
        "repository": inner["source"]["repository"],
    }
    assert inner["requested_source"] == "latest" and inner["filters"] == {
        "pipelines": ["assets"],
        "resolutions": ["1d"],
    }


def _manifest_files(env, snapshot: str):
    from kubecost_etl.snapshots.repository import Repository

    return Repository(env.store, CLUSTER).load_manifest(snapshot).files


@pytest.mark.parametrize(
    ("cluster", "window", "source", "pipelines", "expected"),
    [
        ("nope", None, "pod", [], "unknown cluster 'nope'"),
        (CLUSTER, "7x", "pod", [], "illegal window '7x'"),
        (CLUSTER, "2099-01-01T00:00:00Z,2099-01-02T00:00:00Z", "pod", [], "is in the future"),
        (
            CLUSTER,
            "1500000000,1500086400",
            "pod",
            [],
            "nothing to share: no file under bingen/ matches window",
        ),
        (
            CLUSTER,
            None,
            "20200101T000000Z-abcdef",
            [],
            "snapshot '20200101T000000Z-abcdef' of cluster 'cluster-a' does not exist",
        ),
        (CLUSTER, None, "latest", [], "no verified snapshot of cluster 'cluster-a'"),
        (
            CLUSTER,
            None,
            "pod",
            ["networkinsights"],
            "pipelines ['networkinsights'] not found; there are ['allocations', 'assets']",
        ),
        (CLUSTER, None, "../x", [], "is not a snapshot id"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(env, cluster, window, source, pipelines, expected):
    with pytest.raises(AirflowFailException) as refused:
        stages.preflight(cluster, window, source, pipelines, [])
    assert expected in str(refused.value)
    assert list(env.store.list("")) == []


def test_a_stream_that_fails_leaves_no_bundle_and_a_retry_reports_the_committed_one(env):
    snapshot = backup_stages.run_backup(CLUSTER)["snapshot_id"]
    request = stages.preflight(CLUSTER, None, snapshot, [], [])
    victim = _manifest_files(env, snapshot)[-1]
    good = env.store.read_bytes(f"kubecost-etl-backup/{CLUSTER}/{victim.object}")
    env.store.put_bytes(f"kubecost-etl-backup/{CLUSTER}/{victim.object}", b"not zstd at all")

    with pytest.raises(Exception, match="zstd|Zstd"):
        stages.bundle(request)
    assert list(env.store.list("kubecost-etl-share/")) == []
    assert not [p for p in env.store.root.rglob("*") if "partial" in p.name]

    env.store.put_bytes(f"kubecost-etl-backup/{CLUSTER}/{victim.object}", good)
    first = stages.bundle(request)
    written = env.store.stat(first["key"])
    again = stages.bundle(request)  # a retry after a lost answer: the committed bundle, not a second one
    assert again == first and env.store.stat(first["key"]) == written


def test_a_pod_without_tar_and_an_own_share_store(request, tmp_path, monkeypatch, simulator):
    share_dir = tmp_path / "support-bucket"
    env = make_env(
        request,
        tmp_path,
        monkeypatch,
        simulator,
        no_tar=True,
        share={
            "object_store": {
                "type": "FILESYSTEM",
                "prefix": "support",
                "config": {"directory": str(share_dir)},
            },
            "compression_level": 1,
        },
    )

    result = share("yesterday")  # read through an ephemeral busybox container, as Kubecost's scripts do

    assert result["location"].startswith(f"file://{share_dir}/support/kubecost-etl-share/{CLUSTER}/")
    assert list(env.store.list("")) == []  # nothing in the backup store
    data = (share_dir / "support" / result["key"]).read_bytes()
    out = unpack(data, tmp_path / "unpacked")
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    yesterday = (int(time.time()) // DAY - 1) * DAY
    tree = tree_digests(env.etl)
    assert tree_digests(out / "kc-etl-tmp") == {
        p: d for p, d in tree.items() if in_window(p, yesterday, yesterday + DAY)
    }
    assert (
        json.loads((out / "manifest.json").read_text())["source"]["etl_root"]
        == "/proc/1/root/var/configs/db/etl"
    )
    committed = json.loads((share_dir / "support" / result["manifest_key"]).read_text())
    assert committed["bundle"]["level"] == 1 and committed["bundle"]["sha256"] == sha256(data)


def test_a_cluster_without_backups_shares_its_pod_into_its_share_store(env, tmp_path, monkeypatch):
    config = tmp_path / "no-backup.yaml"
    config.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "id": CLUSTER,
                        "kubeconfig": str(env.sim.kubeconfig),
                        "share": {
                            "object_store": {
                                "type": "FILESYSTEM",
                                "config": {"directory": str(tmp_path / "support")},
                            }
                        },
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))

    yesterday = (int(time.time()) // DAY - 1) * DAY
    assert share("yesterday")["files"] == len(
        [p for p in tree_digests(env.etl) if in_window(p, yesterday, yesterday + DAY)]
    )
    with pytest.raises(
        AirflowFailException, match="backup.object_store: missing \\(the source 'latest' needs"
    ):
        stages.preflight(CLUSTER, None, "latest", [], [])
    with pytest.raises(AirflowFailException, match="backup.object_store: missing \\(an import needs"):
        stages.check_archive(CLUSTER, "uploads/x.tar.gz")


def test_a_share_waits_for_the_clusters_lease_and_gives_it_back(env):
    """A share reads the pod under the cluster's lease: another holder makes it fail (to be retried),
    naming the holder, with nothing written; once free, the share runs and releases the lease."""
    from kubecost_etl.airflow.lease import cluster_lease
    from kubecost_etl.config import load_config
    from kubecost_etl.lease import Holder, LeaseHeld

    lease = cluster_lease(load_config().cluster(CLUSTER))
    other = lease.acquire(Holder(dag_id="kubecost_etl_restore", run_id="manual__other"))
    request = stages.preflight(CLUSTER, None, "pod", [], [])
    with pytest.raises(LeaseHeld, match="kubecost_etl_restore"):
        stages.bundle(request)
    assert not [i.key for i in env.store.list("kubecost-etl-share/")]

    lease.release(other)
    result = stages.bundle(request)
    assert env.store.stat(result["key"]) is not None
    assert lease.read() is None  # released by the share itself
