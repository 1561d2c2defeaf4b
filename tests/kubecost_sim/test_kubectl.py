"""Real kubectl against the sim, with the kubeconfig it writes."""

from __future__ import annotations

import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import tree_digests

pytestmark = [pytest.mark.kubectl, pytest.mark.usefixtures("kubectl")]
ETL = "/var/configs/db/etl"


def text(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode()


def test_get_pods_lists_both_pods(sim: SimulatorProcess):
    output = text(sim.kubectl("get", "pods", "-n", "kubecost")).splitlines()
    assert output[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split() for line in output[1:]]
    assert rows[0][0].startswith("kubecost-cost-analyzer-frontend-") and rows[0][1:4] == [
        "1/1",
        "Running",
        "0",
    ]
    assert rows[1][0] == sim.cost_model_pod() and rows[1][1:4] == ["2/2", "Running", "0"]


def test_logs_with_container_since_time_timestamps_and_deployment(sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    sim.append_log("2024-01-01T00:00:00Z INF one", "2024-01-01T00:00:01Z INF two")
    assert text(sim.kubectl("logs", "-n", "kubecost", pod, "-c", "cost-model")) == (
        "2024-01-01T00:00:00Z INF one\n2024-01-01T00:00:01Z INF two\n"
    )
    stamped = text(sim.kubectl("logs", "-n", "kubecost", pod, "-c", "cost-model", "--timestamps"))
    assert [line.split(" ", 1)[1] for line in stamped.splitlines()] == [
        "2024-01-01T00:00:00Z INF one",
        "2024-01-01T00:00:01Z INF two",
    ]
    assert text(sim.kubectl("logs", pod, "-c", "cost-model", "--since-time=2999-01-01T00:00:00Z")) == ""
    assert (
        text(sim.kubectl("logs", pod, "-c", "cost-model", "--since-time=2000-01-01T00:00:00Z")).count("\n")
        == 2
    )
    by_deployment = sim.kubectl("logs", "-n", "kubecost", "deploy/kubecost-cost-analyzer", "--tail=1")
    assert text(by_deployment) == "2024-01-01T00:00:01Z INF two\n"
    assert b'Defaulted container "cost-model"' in by_deployment.stderr
    wrong = sim.kubectl("logs", pod, "-c", "nope", check=False)
    assert wrong.returncode == 1 and f"container nope is not valid for pod {pod}".encode() in wrong.stderr


def test_exec_output_and_exit_codes(sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    listing = sim.kubectl("exec", "-n", "kubecost", pod, "-c", "cost-model", "--", "ls", ETL)
    assert text(listing) == "bingen\n"
    failed = sim.kubectl("exec", pod, "-c", "cost-model", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3 and b"command terminated with exit code 3" in failed.stderr
    missing = sim.kubectl("exec", pod, "-c", "cost-model", "--", "rsync", check=False)
    assert missing.returncode == 1
    assert b'exec: "rsync": executable file not found in $PATH' in missing.stderr


def test_cp_out_and_back_in_is_byte_identical(sim: SimulatorProcess, etl_dir: Path, tmp_path: Path):
    pod = sim.cost_model_pod()
    sim.kubectl("cp", f"kubecost/{pod}:{ETL}", str(tmp_path / "out"), "-c", "cost-model")
    assert tree_digests(tmp_path / "out") == tree_digests(etl_dir)
    sim.kubectl("cp", f"kubecost/{pod}:{ETL}", str(tmp_path / "resumable"), "-c", "cost-model", "--retries=2")
    assert tree_digests(tmp_path / "resumable") == tree_digests(etl_dir)  # the "tar | tail -c+N" form
    sim.kubectl("cp", str(tmp_path / "out"), f"kubecost/{pod}:/var/configs/db/etl-copy", "-c", "cost-model")
    assert tree_digests(etl_dir.parent / "etl-copy") == tree_digests(etl_dir)


def test_rollout_restart_gives_a_new_pod(sim: SimulatorProcess):
    before = sim.cost_model_pod()
    result = sim.kubectl("rollout", "restart", "deployment/kubecost-cost-analyzer", "-n", "kubecost")
    assert text(result) == "deployment.apps/kubecost-cost-analyzer restarted\n"
    after = text(
        sim.kubectl(
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=cost-analyzer",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        )
    )
    assert after not in ("", before) and after == sim.cost_model_pod()
    status = sim.kubectl("rollout", "status", "deployment/kubecost-cost-analyzer", "--timeout=20s")
    assert b"successfully rolled out" in status.stdout


def test_debug_container_copies_through_proc_1_root_without_tar(simulator, etl_dir: Path, tmp_path: Path):
    sim = simulator(etl_dir, no_tar=True)
    pod = sim.cost_model_pod()
    no_tar = sim.kubectl("exec", pod, "-c", "cost-model", "--", "tar", "cf", "-", ETL, check=False)
    assert no_tar.returncode == 1 and b'exec: "tar": executable file not found' in no_tar.stderr
    sim.kubectl(
        "debug",
        "-n",
        "kubecost",
        pod,
        "--image=busybox:1.36",
        "--target=cost-model",
        "--container=etl-copy",
        "--",
        "sleep",
        "3600",
    )
    archive = tmp_path / "etl.tar"
    with open(archive, "wb") as out:
        subprocess.run(
            [
                "kubectl",
                "exec",
                pod,
                "-c",
                "etl-copy",
                "--",
                "tar",
                "cf",
                "-",
                "-C",
                "/proc/1/root" + ETL,
                ".",
            ],
            env=sim.kubectl_env(),
            stdout=out,
            check=True,
            timeout=60,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "copy", filter="data")
    assert tree_digests(tmp_path / "copy") == tree_digests(etl_dir)


@pytest.mark.slow
def test_exec_tar_throughput(simulator, big_etl_dir: Path, tmp_path: Path):
    sim = simulator(big_etl_dir)
    archive = tmp_path / "big.tar"
    started = time.monotonic()
    with open(archive, "wb") as out:
        subprocess.run(
            [
                "kubectl",
                "exec",
                sim.cost_model_pod(),
                "-c",
                "cost-model",
                "--",
                "tar",
                "cf",
                "-",
                "-C",
                ETL,
                ".",
            ],
            env=sim.kubectl_env(),
            stdout=out,
            check=True,
            timeout=120,
        )
    seconds = time.monotonic() - started
    size = archive.stat().st_size
    print(
        f"\nkubectl exec tar cf -: {size / 1e6:.0f} MB in {seconds:.2f} s = {size / 1e6 / seconds:.0f} MB/s"
    )
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "copy", filter="data")
    assert tree_digests(tmp_path / "copy") == tree_digests(big_etl_dir)
