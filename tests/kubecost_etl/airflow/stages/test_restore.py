"""Restores against the cluster simulator and a real store, through the stage callables.

``restore()`` runs the stages in the DAG's order and always ends with its teardown (``finish``),
as the DAG does, so every failure path below ends the way a real run would. What the pod holds
is checked on the host folder the simulator maps to ``/var/configs/db``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.airflow.stages import restore as stages
from kubecost_etl.config import load_config
from kubecost_etl.kube.exec import ExecStreamCut, PodExec
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.rollout import RolloutError, owning_workload, restart_workload, wait_for_replacement
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore.stage import StagingFailed
from kubecost_etl.restore.swap import SwapFailed
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir, tree_digests
from tests.kubecost_etl.stores_under_test import STORE_PREFIX, make_s3
from tests.servers import MOTO_ACCESS_KEY, MOTO_REGION, MOTO_SECRET_KEY

CLUSTER = "cluster-a"
RESTORE_TREE = {"days": 5, "hourly_hours": 8, "file_bytes": 30_000, "seed": 11}


def tree_mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): int(p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


@dataclass
class Env:
    sim: SimulatorProcess
    etl: Path
    store: ObjectStore  # the test's own client of the store the pipeline writes to
    runs: int = 0

    @property
    def repo(self) -> Repository:
        return Repository(self.store, CLUSTER)

    def backup(self) -> str:
        return backup_stages.run_backup(CLUSTER, full_verify=True)["snapshot_id"]

    def siblings(self) -> list[str]:
        """What lies next to the ETL dir on the volume: only ``etl`` once a restore is over."""
        return sorted(p.name for p in self.etl.parent.iterdir())

    def pod(self) -> str:
        return self.sim.cost_model_pod()


@dataclass
class Outcome:
    ctx: dict
    plan: dict | None = None
    failure: Exception | None = None
    finished: dict | None = None
    results: dict = field(default_factory=dict)


@pytest.fixture
def make_env(request, tmp_path, monkeypatch, simulator):
    """One cluster: a generated ETL tree in a simulated pod, configured with a filesystem or S3 store."""

    def make(no_tar: bool = False, store_kind: str = "filesystem", **tree) -> Env:
        etl = make_etl_dir(tmp_path, **{**RESTORE_TREE, **tree})
        sim = simulator(etl, no_tar=no_tar)
        if store_kind == "s3":
            server = request.getfixturevalue("moto_s3_server")
            bucket = request.getfixturevalue("unique_bucket_name")
            own_client = make_s3(server, bucket).store
            object_store = {
                "type": "S3",
                "prefix": STORE_PREFIX,
                "config": {
                    "bucket": bucket,
                    "endpoint": server.url,
                    "region": MOTO_REGION,
                    "access_key": MOTO_ACCESS_KEY,
                    "secret_key": MOTO_SECRET_KEY,
                },
            }
        else:
            own_client = request.getfixturevalue("fs_store")
            object_store = {
                "type": "FILESYSTEM",
                "prefix": STORE_PREFIX,
                "config": {"directory": str(own_client.root)},
            }
        config = tmp_path / "kubecost-etl.yaml"
        config.write_text(
            json.dumps(
                {
                    "clusters": [
                        {
                            "id": CLUSTER,
                            "kubeconfig": str(sim.kubeconfig),
                            "backup": {"object_store": object_store},
                        }
                    ]
                }
            )
        )
        monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
        return Env(sim, etl, own_client)

    return make


def restore(
    env: Env,
    snapshot: str = "latest",
    mode: str = "replace",
    restart: bool | None = None,
    dry_run: bool = False,
    after_swap=None,
) -> Outcome:
    """The DAG's stages in order; any failure goes straight to the teardown, as in a run."""
    env.runs += 1
    ctx = stages.preflight(
        CLUSTER, snapshot, mode, restart, dry_run, f"manual__{env.runs}", datetime.now(UTC)
    )
    out = Outcome(ctx)
    checked = swapped = None
    try:
        out.results["verify"] = stages.verify_snapshot(ctx)
        out.plan = stages.plan(ctx)
        if dry_run:  # the short circuit skips everything after the plan but the teardown
            out.finished = stages.finish(ctx, None, None)
            return out
        try:
            out.results["safety_backup"] = stages.safety_backup(ctx, out.plan)
        except AirflowSkipException:
            out.results["safety_backup"] = "skipped"
        staged = stages.stage(ctx, out.plan)
        out.results["check_staged"] = stages.check_staged(ctx, out.plan, staged)
        swapped = stages.swap(ctx, out.plan)
        out.results["swap"] = swapped
        if after_swap:
            after_swap()
        try:
            out.results["restart"] = stages.restart(ctx, swapped)
        except AirflowSkipException:
            out.results["restart"] = "skipped"
        checked = stages.post_check(ctx, out.plan, swapped)
    except Exception as exc:  # the run fails here; its teardown still runs
        out.failure = exc
    out.finished = stages.finish(ctx, checked, swapped)
    return out


def damage(etl: Path) -> None:
    """One set file gone, two broken (one keeps its size), one extra: all three without a bingen header."""
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    files[0].unlink()
    files[1].write_bytes(b"BGST truncated")
    files[2].write_bytes(files[2].read_bytes()[::-1])  # same size, other content, same mtime
    os.utime(files[2], (files[3].stat().st_mtime, files[3].stat().st_mtime))
    (etl / "bingen" / "allocations" / "1d" / "9999999999-extra").write_bytes(b"not in the snapshot")


def back_up_then_damage(env: Env) -> tuple[dict, str, dict]:
    """The tree as backed up, the snapshot's id, and the tree after ``damage``."""
    original = tree_digests(env.etl)
    snapshot = env.backup()
    damage(env.etl)
    return original, snapshot, tree_digests(env.etl)


def preflight(snapshot: str, run: str) -> dict:
    """The first stage alone (replace, no restart, no dry run), for tests that drive the later ones
    by hand.
    """
    return stages.preflight(CLUSTER, snapshot, "replace", False, False, f"manual__{run}", datetime.now(UTC))


def stage_and_check(ctx: dict, plan: dict) -> None:
    stages.check_staged(ctx, plan, stages.stage(ctx, plan))


def check_and_finish(ctx: dict, plan: dict, swapped: dict) -> dict:
    """The post-check and the teardown after a swap: the teardown's result."""
    return stages.finish(ctx, stages.post_check(ctx, plan, swapped), swapped)


@pytest.mark.parametrize("kind", ["filesystem", "s3"])
def test_replace_round_trip_is_byte_identical_keeps_mtimes_and_restarts(make_env, kind):
    env = make_env(store_kind=kind)
    mtimes = tree_mtimes(env.etl)
    original, snapshot, damaged = back_up_then_damage(env)
    pod_before = env.pod()

    out = restore(env)

    assert out.failure is None, out.failure
    assert out.ctx["snapshot_id"] == snapshot and out.ctx["restart"] is True
    assert out.plan["add"] and out.plan["replace"] and out.plan["remove"]
    assert tree_digests(env.etl) == original
    assert tree_mtimes(env.etl) == mtimes  # the next incremental backup can reuse every entry
    assert env.siblings() == ["etl"]
    assert env.pod() != pod_before
    assert (
        out.results["check_staged"]["checksums"]
        and out.results["restart"]["workload"]["kind"] == "Deployment"
    )
    assert out.finished["outcome"] == "restored"
    safety = out.results["safety_backup"]["snapshot_id"]
    assert safety != snapshot and {e.path: e.sha256 for e in env.repo.load_manifest(safety).files} == damaged
    assert out.results["safety_backup"]["damaged_files"] == 3  # broken headers are backed up as found
    again = env.backup()  # nothing changed since the restore: nothing is transferred
    assert env.repo.load_manifest(again).stats["transferred_files"] == 0

    refused = restore(env, snapshot=safety)  # its set files are damaged: never written back
    assert isinstance(refused.failure, AirflowFailException) and "damaged in the source" in str(
        refused.failure
    )
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_a_safety_backup_not_stored_intact_stops_the_restore_before_the_pod_is_touched(make_env):
    env = make_env()
    wanted = env.backup()
    changed = max((p for p in env.etl.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    mtime = changed.stat().st_mtime
    changed.write_bytes(changed.read_bytes()[:-8] + b"changed!")  # header intact: the next backup passes
    os.utime(changed, (mtime + 1, mtime + 1))  # a current-period file may be rewritten within its second
    newer = env.backup()
    entry = next(
        e for e in env.repo.load_manifest(newer).files if e.path == changed.relative_to(env.etl).as_posix()
    )
    stored = env.store.read_bytes(env.repo.key(entry.object))
    # Same size, other bytes: the safety backup reuses this entry and only its full re-read can tell.
    env.store.put_bytes(env.repo.key(entry.object), stored[:8] + bytes(len(stored) - 8))
    before, pod = tree_digests(env.etl), env.pod()

    out = restore(env, snapshot=wanted)

    assert out.results["verify"]["snapshot_id"] == wanted and "safety_backup" not in out.results
    assert "not stored intact" in str(out.failure) and entry.path in str(out.failure)
    assert out.finished["outcome"] == "cleaned up"
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"] and env.pod() == pod


def test_dry_run_changes_nothing_and_lists_every_change(make_env):
    env = make_env()
    _, _, before = back_up_then_damage(env)
    pod = env.pod()
    out = restore(env, dry_run=True)
    assert out.failure is None, out.failure
    assert tree_digests(env.etl) == before and env.pod() == pod and env.siblings() == ["etl"]
    assert out.plan["remove"] == [{"path": "bingen/allocations/1d/9999999999-extra", "size": 19}]
    assert len(out.plan["replace"]) == 2 and len(out.plan["add"]) == 1
    assert out.finished["outcome"] == "dry run"


@pytest.mark.parametrize("mode", ["replace", "fill-missing"])
def test_restore_into_a_wiped_volume(make_env, mode):
    env = make_env()
    original = tree_digests(env.etl)
    env.backup()
    for path in sorted(env.etl.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    env.etl.rmdir()

    out = restore(env, mode=mode)

    assert out.failure is None, out.failure
    assert out.results["safety_backup"] == "skipped"
    assert out.results["swap"].get("previous") is None
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_fill_missing_restores_exactly_the_deleted_files_and_leaves_changed_ones(make_env):
    env = make_env()
    original = tree_digests(env.etl)
    env.backup()
    files = sorted(p for p in env.etl.rglob("*") if p.is_file())
    deleted = [files[0], files[5], files[-1]]
    for path in deleted:
        path.unlink()
    files[3].write_bytes(b"changed by Kubecost")
    hourly = env.etl / "bingen" / "assets" / "1h"
    for path in hourly.iterdir():  # a whole directory gone: it moves back in one rename
        path.unlink()
    hourly.rmdir()
    expected = {
        **original,
        files[3].relative_to(env.etl).as_posix(): hashlib.sha256(b"changed by Kubecost").hexdigest(),
    }
    pod = env.pod()

    out = restore(env, mode="fill-missing")

    assert out.failure is None, out.failure
    assert out.ctx["restart"] is False and out.results["restart"] == "skipped" and env.pod() == pod
    assert tree_digests(env.etl) == expected
    added = {f["path"] for f in out.plan["add"]}
    assert {p.relative_to(env.etl).as_posix() for p in deleted} <= added
    assert all(
        p.startswith("bingen/assets/1h/")
        for p in added - {p.relative_to(env.etl).as_posix() for p in deleted}
    )
    assert env.siblings() == ["etl"]

    second = restore(env, mode="fill-missing")  # nothing is missing any more
    assert second.failure is None and second.plan["add"] == [] and tree_digests(env.etl) == expected


def test_fill_missing_over_a_full_size_tree_fits_every_exec_in_the_request_line_limit(make_env):
    # Kubecost's default 91 daily + 49 hourly files per pipeline. The 91 daily files of one pipeline
    # go back into their existing directory by mv -n; one mv with all their staging paths (or one
    # sha256sum over the tree) would exceed the 8 KiB request line the simulator enforces, as proxies do.
    env = make_env(days=91, hourly_hours=49, file_bytes=1_000)
    original = tree_digests(env.etl)
    env.backup()
    daily = env.etl / "bingen" / "allocations" / "1d"
    for path in daily.iterdir():
        path.unlink()

    out = restore(env, mode="fill-missing")

    assert out.failure is None, out.failure
    assert len(original) == 280 and len(out.plan["add"]) == 91 and out.results["swap"]["moved"] == 91
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_fill_missing_fails_when_a_file_it_could_move_stays_in_staging(make_env, monkeypatch):
    env = make_env()
    env.backup()
    lost = sorted(p for p in env.etl.rglob("*") if p.is_file())[0]
    lost.unlink()  # its directory stays: the file goes back by mv -n
    before = tree_digests(env.etl)
    real_exec = ExecTarget.exec

    def exec_moving_nothing(self, core_api, command, **options):
        # An mv that exits 0 yet moves nothing must not pass for a file that appeared in the pod meanwhile.
        return real_exec(self, core_api, ["true"] if command[:2] == ["mv", "-n"] else command, **options)

    monkeypatch.setattr(ExecTarget, "exec", exec_moving_nothing)
    out = restore(env, mode="fill-missing")

    assert isinstance(out.failure, SwapFailed) and lost.name in str(out.failure)
    assert out.finished["outcome"] == "cleaned up"
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]


def corrupt_object(env: Env, snapshot: str) -> None:
    repo = env.repo
    victim = repo.load_manifest(snapshot).files[3]
    repo.store.put_bytes(repo.key(victim.object), zstandard.ZstdCompressor().compress(b"not the original"))


def delete_object(env: Env, snapshot: str) -> None:
    repo = env.repo
    repo.store.delete([repo.key(repo.load_manifest(snapshot).files[-1].object)])


def tamper_manifest(path: str):
    def tamper(env: Env, snapshot: str) -> None:
        repo = env.repo
        body = json.loads(repo.store.read_bytes(repo.manifest_key(snapshot)))
        body["files"][0]["path"] = path
        repo.store.put_bytes(repo.manifest_key(snapshot), json.dumps(body).encode())

    return tamper


@pytest.mark.parametrize(
    "break_snapshot, refused_at",
    [
        (corrupt_object, "verify"),
        (delete_object, "verify"),
        (tamper_manifest("../../../../etc/cron.d/evil"), "preflight"),
        (tamper_manifest("/var/configs/db/evil"), "preflight"),
    ],
    ids=["corrupted-object", "missing-object", "dot-dot-path", "absolute-path"],
)
def test_a_broken_snapshot_is_refused_and_the_live_data_stays_identical(make_env, break_snapshot, refused_at):
    env = make_env()
    _, snapshot, before = back_up_then_damage(env)
    pod = env.pod()
    break_snapshot(env, snapshot)

    if refused_at == "preflight":
        with pytest.raises(AirflowFailException, match="not allowed|only relative"):
            restore(env, snapshot=snapshot)
    else:
        out = restore(env, snapshot=snapshot)
        assert isinstance(out.failure, AirflowFailException) and "failed verification" in str(out.failure)
        assert out.plan is None and out.finished["outcome"] == "cleaned up"
        assert env.repo.load_verification(snapshot)["ok"] is False  # never "latest" again
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"] and env.pod() == pod


def test_a_cut_stream_leaves_the_live_dir_untouched_and_no_staging_dir_and_a_retry_completes(make_env):
    env = make_env()
    original, snapshot, before = back_up_then_damage(env)
    ctx = preflight(snapshot, "cut")
    stages.verify_snapshot(ctx)
    plan = stages.plan(ctx)
    env.sim.set_faults(
        exec_cut_stdin_after_bytes=300_000
    )  # of about 800 KB: the connection drops mid-archive
    with pytest.raises(ExecStreamCut):
        stages.stage(ctx, plan)
    assert env.sim.faults()["exec_cut_stdin_after_bytes"] is None, "the cut never happened"
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]

    stage_and_check(ctx, plan)  # the task's retry
    assert check_and_finish(ctx, plan, stages.swap(ctx, plan))["outcome"] == "restored"
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_a_store_error_while_staging_removes_the_staging_dir_and_leaves_the_live_dir(make_env):
    env = make_env()
    _, snapshot, before = back_up_then_damage(env)
    ctx = preflight(snapshot, "store-error")
    stages.verify_snapshot(ctx)
    plan = stages.plan(ctx)
    delete_object(env, snapshot)  # gone from the store after it verified

    with pytest.raises(ObjectNotFound):
        stages.stage(ctx, plan)

    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]


def test_staged_files_that_differ_from_the_snapshot_are_removed_before_any_swap(make_env):
    env = make_env()
    _, snapshot, before = back_up_then_damage(env)
    ctx = preflight(snapshot, "bad-stage")
    plan = stages.plan(ctx)
    staged = stages.stage(ctx, plan)
    staging = env.etl.parent / Path(ctx["dirs"]["staging"]).name
    victim = max((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[::-1])  # same size: only the checksum can tell

    with pytest.raises(StagingFailed, match="sha256 differs"):
        stages.check_staged(ctx, plan, staged)

    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]


def test_a_failed_post_check_puts_the_previous_data_back_and_reloads_kubecost(make_env):
    env = make_env()
    victim = sorted(p for p in env.etl.rglob("*") if p.is_file())[6].relative_to(env.etl)  # not damaged below
    _, _, before = back_up_then_damage(env)
    pod = env.pod()

    out = restore(env, after_swap=lambda: (env.etl / victim).unlink())  # restored, then lost again

    assert "missing" in str(out.failure)
    assert out.finished["outcome"] == "rolled back"
    assert any("restarted Kubecost again" in a for a in out.finished["actions"])
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]
    assert env.pod() != pod and env.sim.state()["restarts"] == 2


def test_swap_resumes_after_stopping_between_its_renames_and_roll_back_recovers_that_state(make_env):
    env = make_env()
    original, snapshot, before = back_up_then_damage(env)
    ctx = preflight(snapshot, "resume")
    plan = stages.plan(ctx)
    stage_and_check(ctx, plan)
    previous = env.etl.parent / Path(ctx["dirs"]["previous"]).name
    env.etl.rename(previous)  # the first rename happened, then the worker died

    assert stages.finish(ctx, None, None)["outcome"] == "rolled back"  # abandoned here: put back
    assert tree_digests(env.etl) == before and env.siblings() == ["etl"]

    stage_and_check(ctx, plan)
    env.etl.rename(previous)
    swapped = stages.swap(ctx, plan)  # retried: completes the second rename
    assert swapped["previous"] == ctx["dirs"]["previous"]
    assert stages.swap(ctx, plan)["outcome"] == "already swapped"
    check_and_finish(ctx, plan, swapped)
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_a_pod_without_tar_restores_through_a_debug_container_also_after_the_restart(make_env):
    env = make_env(no_tar=True)
    original, _, _ = back_up_then_damage(env)

    out = restore(env)

    assert out.failure is None, out.failure
    assert out.ctx["target"]["via_debug_container"]
    assert out.ctx["dirs"]["live"] == "/proc/1/root/var/configs/db/etl"
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]
    new_pod = [p for p in env.sim.state()["pods"] if p["name"] == env.pod()][0]
    assert new_pod["ephemeral_containers"], "the post-check ran in a fresh debug container of the new pod"


def test_a_restore_reuses_the_running_debug_container_for_all_its_stages(make_env):
    env = make_env(no_tar=True)
    back_up_then_damage(env)

    def debug_containers() -> list[str]:
        return next(p for p in env.sim.state()["pods"] if p["name"] == env.pod())["ephemeral_containers"]

    before = debug_containers()
    out = restore(env, mode="fill-missing")  # no restart: every stage, the safety backup too, runs in one pod

    assert out.failure is None, out.failure
    assert out.results["safety_backup"]["snapshot_id"]
    assert len(before) == 1 and debug_containers() == before  # the backup's own, still running, is reused


def test_restoring_twice_is_harmless(make_env):
    env = make_env()
    original, snapshot, _ = back_up_then_damage(env)
    first = restore(env, snapshot=snapshot)
    second = restore(env, snapshot=snapshot)
    assert first.failure is None and second.failure is None
    assert second.plan["add"] == second.plan["replace"] == second.plan["remove"] == []
    assert tree_digests(env.etl) == original and env.siblings() == ["etl"]


def test_leftovers_of_an_interrupted_earlier_run_are_reported_removed_or_put_back(make_env):
    env = make_env()
    snapshot = env.backup()
    stale_staging = env.etl.parent / "etl.restore-older-run"
    stale_staging.mkdir()
    (stale_staging / "x").write_bytes(b"copy")
    ctx = preflight(snapshot, "left")
    assert ctx["leftovers"] == ["/var/configs/db/etl.restore-older-run"]
    stages.stage(ctx, stages.plan(ctx))
    assert not stale_staging.exists()  # a staging dir only ever holds a copy: removed

    before = tree_digests(env.etl)
    env.etl.rename(env.etl.parent / "etl.previous-older-run")  # an earlier swap stopped half-way
    with pytest.raises(AirflowFailException, match="put it back first"):  # a dry run changes nothing
        stages.preflight(CLUSTER, snapshot, "replace", False, True, "manual__dry", datetime.now(UTC))
    ctx = preflight(snapshot, "after-kill")  # not refused: the next run puts the data back, under the lease
    assert not env.etl.exists()
    stages.plan(ctx)
    assert tree_digests(env.etl) == before and not (env.etl.parent / "etl.previous-older-run").exists()
    (env.etl.parent / "etl.previous-a").mkdir()
    (env.etl.parent / "etl.previous-b").mkdir()
    env.etl.rename(env.etl.parent / "etl.previous-c")  # several candidates: which one was live is unknown
    with pytest.raises(AirflowFailException, match="put it back first"):
        preflight(snapshot, "blocked")


def test_rollout_restart_finds_the_deployment_and_waits_for_the_new_ready_pod(make_env):
    env = make_env()
    hook = KubecostClusterHook.for_cluster(load_config().cluster(CLUSTER))
    old = find_cost_model_pod(hook.core_v1, "kubecost", "app=cost-analyzer")
    workload = owning_workload(hook.core_v1, hook.apps_v1, old)
    assert (workload.kind, workload.name) == ("Deployment", "kubecost-cost-analyzer")
    restart_workload(hook.apps_v1, workload)
    restart_workload(hook.apps_v1, workload)  # twice within a second: each one is a real restart
    new = wait_for_replacement(
        hook.core_v1, "kubecost", "app=cost-analyzer", "cost-model", old, timeout_s=30, sleep=lambda s: None
    )
    assert new.uid != old.uid and env.sim.state()["restarts"] == 2


def test_waiting_for_a_replacement_that_never_comes_times_out(make_env):
    make_env()
    hook = KubecostClusterHook.for_cluster(load_config().cluster(CLUSTER))
    old = find_cost_model_pod(hook.core_v1, "kubecost", "app=cost-analyzer")
    ticks = itertools.count(0, 10)  # each look at the clock is 10 s later
    with pytest.raises(RolloutError, match=f"no Ready replacement for pod {old.name}.*still {old.name}"):
        wait_for_replacement(
            hook.core_v1,
            "kubecost",
            "app=cost-analyzer",
            "cost-model",
            old,
            timeout_s=25,
            clock=lambda: next(ticks),
            sleep=lambda s: None,
        )


def test_the_staged_archive_never_leaves_its_top_directory(make_env, monkeypatch):
    """What tar receives: one top dir (the staging dir's name), directories and regular files only."""
    env = make_env()
    snapshot = env.backup()
    ctx = preflight(snapshot, "peek")
    plan = stages.plan(ctx)
    captured = bytearray()
    original = PodExec.write_stdin
    monkeypatch.setattr(
        PodExec, "write_stdin", lambda self, data: (captured.extend(data), original(self, data))[1]
    )
    stages.stage(ctx, plan)
    top = Path(ctx["dirs"]["staging"]).name
    with tarfile.open(fileobj=io.BytesIO(bytes(captured)), mode="r:") as archive:
        members = archive.getmembers()
    assert all(m.name == top or m.name.startswith(top + "/") for m in members)
    assert {m.type for m in members} == {tarfile.DIRTYPE, tarfile.REGTYPE}
    assert len([m for m in members if m.isreg()]) == ctx["files"]
