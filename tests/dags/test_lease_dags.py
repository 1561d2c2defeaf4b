"""The cluster lease across real DAG runs: the simulator, moto's S3 server, real Airflow.

- In one process (dag.test()): a lease another deployment holds makes a run refuse after
  ``lease.wait``, naming the holder, before anything touches the pod; a finished run leaves no lease.
- "Two Airflow deployments": two ``airflow dags test`` processes with separate AIRFLOW_HOMEs sharing one
  bucket and one cluster. No sleeps order them: the test holds the lease itself (as a third
  deployment would) until both runs are waiting for it, as their own metadata DBs show, then lets
  go; the two then race for it. The loser waits, logging the winner's name, and runs after the winner
  released the lease; every snapshot equals one real state of the pod.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubecost_etl.lease import ClusterLease, Holder, LeaseSettings
from kubecost_etl.storage.s3 import S3Store

from tests.etl_trees import make_etl_dir, tree_digests

from .dag_loading import DAGS, load_dag

CLUSTER = "cluster-a"
REPO = Path(__file__).resolve().parents[2]
OTHER_DEPLOYMENT = Holder("kubecost_etl_restore", "manual__other-deployment", host="airflow-b", pid=7)


@pytest.fixture
def bucket(moto_s3_server, unique_bucket_name):
    client = moto_s3_server.client()
    client.create_bucket(Bucket=unique_bucket_name)
    return client, unique_bucket_name


@pytest.fixture
def cluster(tmp_path, simulator, moto_s3_server, bucket):
    etl = make_etl_dir(tmp_path, days=3, hourly_hours=4, file_bytes=20_000, seed=5)
    sim = simulator(etl)
    _, name = bucket
    store_file = tmp_path / "object-store.yaml"
    store_file.write_text(yaml.safe_dump({"type": "S3", "config": {
        "bucket": name, "endpoint": moto_s3_server.url.split("://", 1)[1], "insecure": True,
        "region": "us-east-1", "access_key": "testing", "secret_key": "testing"}}))  # fmt: skip
    return sim, etl, store_file


def write_config(tmp_path: Path, sim, store_file: Path, **lease) -> Path:
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": {"backup": {"object_store": {"config_file": str(store_file)}}, "lease": lease,
                     "repair": {"poll_seconds": 0.05, "step_timeout_minutes": 2}},
        "clusters": [{"id": CLUSTER, "kubeconfig": str(sim.kubeconfig)}],
    }))  # fmt: skip
    return config


def lease_of(bucket) -> ClusterLease:
    client, name = bucket
    return ClusterLease(S3Store(client, name), CLUSTER, LeaseSettings())


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def manifests(bucket) -> list[dict]:
    client, name = bucket
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]
    return [json.loads(client.get_object(Bucket=name, Key=k)["Body"].read()) for k in keys
            if k.endswith("/manifest.json")]  # fmt: skip


def manifest_digests(manifest: dict) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in manifest["files"]}


# --- one deployment, dag.test() ------------------------------------------------------------------


@pytest.mark.slow
def test_a_restore_refuses_while_another_deployment_holds_the_lease(
    airflow_db, tmp_path, monkeypatch, cluster, bucket
):
    sim, etl, store_file = cluster
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(write_config(tmp_path, sim, store_file, wait=0)))
    from kubecost_etl.airflow.stages.backup import run_backup

    run_backup(CLUSTER)
    before = tree_digests(etl)
    lease_of(bucket).acquire(OTHER_DEPLOYMENT)

    run = load_dag("kubecost_etl_restore", retries=0).test(run_conf={"cluster": CLUSTER})

    got = states(run)
    assert run.state == "failed"
    assert got["acquire_lease"] == "failed"
    assert all(got[t] == "upstream_failed" for t in ("verify_snapshot", "plan", "stage", "swap"))
    assert got["release_lease"] in ("skipped", "upstream_failed")  # its setup never got the lease
    assert tree_digests(etl) == before
    assert sorted(p.name for p in etl.parent.iterdir()) == ["etl"]  # no staging dir
    record, _ = lease_of(bucket).read()
    assert record.holder == OTHER_DEPLOYMENT  # left alone
    [acquire] = [ti for ti in run.get_task_instances() if ti.task_id == "acquire_lease"]
    assert acquire.try_number == 1  # a refusal is not retried


@pytest.mark.slow
def test_a_backup_run_takes_and_gives_back_the_lease(airflow_db, tmp_path, monkeypatch, cluster, bucket):
    sim, etl, store_file = cluster
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(write_config(tmp_path, sim, store_file)))

    run = load_dag("kubecost_etl_backup", retries=0).test()

    got = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "success", got
    assert got[("backup_cluster.acquire_lease", 0)] == "success"
    assert got[("backup_cluster.release_lease", 0)] == "success"
    assert lease_of(bucket).read() is None
    [manifest] = manifests(bucket)
    assert manifest_digests(manifest) == tree_digests(etl)


@pytest.mark.slow
def test_a_cluster_named_twice_is_never_backed_up_twice_at_once(
    airflow_db, tmp_path, monkeypatch, cluster, bucket
):
    sim, etl, store_file = cluster
    monkeypatch.setenv(
        "KUBECOST_ETL_CONFIG", str(write_config(tmp_path, sim, store_file, poke_interval="1s"))
    )

    run = load_dag("kubecost_etl_backup", retries=0).test(run_conf={"clusters": [CLUSTER, CLUSTER]})

    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    if tis[("select_clusters", -1)].state == "failed":
        return  # duplicates refused up front: nothing ran, which is also fine
    assert run.state == "success", {k: ti.state for k, ti in tis.items()}
    spans = sorted(
        (tis[("backup_cluster.acquire_lease", i)].end_date, tis[("backup_cluster.release_lease", i)].end_date)
        for i in (0, 1)
    )
    assert spans[0][1] <= spans[1][0]  # the second group took the lease only after the first gave it back
    assert lease_of(bucket).read() is None


# --- two deployments -----------------------------------------------------------------------------


class Deployment:
    """One Airflow home (its own SQLite metadata DB) running ``airflow dags test`` in a subprocess."""

    def __init__(self, home: Path, template_db: Path, config: Path) -> None:
        self.home = home
        home.mkdir(parents=True)
        # SQLite's backup API: a consistent copy, whatever sits in the source's write-ahead log.
        with sqlite3.connect(template_db) as source, sqlite3.connect(home / "airflow.db") as target:
            source.backup(target)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "KUBECOST_ETL_CONFIG": str(config),
            "PYTHONPATH": f"{REPO / 'include'}:{REPO / 'simulator'}:{REPO}",
        }
        self.process: subprocess.Popen | None = None
        self.output = home / "output.log"

    def start(self, dag_id: str, conf: dict) -> None:
        airflow = str(Path(sys.executable).parent / "airflow")
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                ["timeout", "-k", "10", "600", airflow, "dags", "test", dag_id, "-c", json.dumps(conf)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def task_rows(self, suffix: str) -> list[tuple]:
        """(task_id, state, start_date, end_date) of the task instances named ``*suffix`` of this home's
        newest run (the template DB may hold runs of earlier tests)."""
        with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(
                "select task_id, state, start_date, end_date from task_instance where task_id like ? and "
                "run_id = (select run_id from dag_run order by id desc limit 1)",
                (f"%{suffix}",),
            ).fetchall()

    def waiting_for_lease(self) -> bool:
        return any(row[1] == "up_for_reschedule" for row in self.task_rows("acquire_lease"))

    def wait(self) -> int:
        return self.process.wait(timeout=660)

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def until(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


@pytest.fixture
def template_db(airflow_db, tmp_path_factory):
    """A migrated metadata DB to copy into each deployment's home (migrating twice costs ~20 s)."""
    return Path(airflow_db) / "airflow.db"


PAIRS = {
    "backup+restore": (
        ("kubecost_etl_backup", {}),
        ("kubecost_etl_restore", {"cluster": CLUSTER, "restart": False}),
    ),
    "restore+restore": (
        ("kubecost_etl_restore", {"cluster": CLUSTER, "restart": False}),
        ("kubecost_etl_restore", {"cluster": CLUSTER, "restart": False}),
    ),
    # The repair's backup_first runs under the repair's own lease: the backup DAG waits for all of it.
    "repair+backup": (
        (
            "kubecost_etl_repair",
            {"cluster": CLUSTER, "window": "yesterday", "profile": "v2", "backup_first": True},
        ),
        ("kubecost_etl_backup", {}),
    ),
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("pair", list(PAIRS))
def test_two_deployments_on_one_cluster_take_turns(pair, tmp_path, template_db, monkeypatch, cluster, bucket):
    sim, etl, store_file = cluster
    config = write_config(tmp_path, sim, store_file, wait="10m", poke_interval="1s", ttl="5m")
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    from kubecost_etl.airflow.stages.backup import run_backup

    original = tree_digests(etl)
    run_backup(CLUSTER)
    seeded = {m["snapshot_id"] for m in manifests(bucket)}
    paths = sorted(original)
    (etl / paths[0]).unlink()  # Kubecost lost a file...
    (etl / paths[1]).write_bytes((etl / paths[2]).read_bytes())  # ... and one holds another's (valid) data
    damaged = tree_digests(etl)
    gate = lease_of(bucket)
    gate.acquire(OTHER_DEPLOYMENT)  # a third deployment holds the lease until both runs wait for it

    first, second = (Deployment(tmp_path / name, template_db, config) for name in ("airflow-1", "airflow-2"))
    (dag_1, conf_1), (dag_2, conf_2) = PAIRS[pair]
    first.start(dag_1, conf_1)
    second.start(dag_2, conf_2)
    until(lambda: first.waiting_for_lease() and second.waiting_for_lease(), "both runs wait for the lease")
    assert gate.release(OTHER_DEPLOYMENT) == "released"

    assert (first.wait(), second.wait()) == (0, 0), first.log()[-3000:] + second.log()[-3000:]

    # Who won: the run whose lease was released first. The other waited for it, naming it.
    spans = {}
    for name, deployment in (("first", first), ("second", second)):
        [(_, _, _, acquired)] = deployment.task_rows("acquire_lease")
        [(_, release_state, _, released)] = deployment.task_rows("release_lease")
        assert release_state == "success"
        spans[name] = (acquired, released)
    winner, loser = sorted(spans, key=lambda name: spans[name][0])
    assert spans[winner][1] <= spans[loser][0], spans  # the leases never overlapped
    winner_dag = {"first": dag_1, "second": dag_2}[winner]
    loser_log = {"first": first, "second": second}[loser].log()
    assert f"the lease is held by {winner_dag} run" in loser_log
    assert "the lease is held by kubecost_etl_restore run manual__other-deployment" in loser_log
    assert lease_of(bucket).read() is None  # nothing left held

    # Every snapshot is one real state of the pod (never a mix): as damaged, or as the runs left it.
    final = tree_digests(etl)
    if "restore" in pair:
        assert final == original
    new = [m for m in manifests(bucket) if m["snapshot_id"] not in seeded]
    assert new
    for manifest in new:
        assert manifest_digests(manifest) in (damaged, final), manifest["snapshot_id"]
