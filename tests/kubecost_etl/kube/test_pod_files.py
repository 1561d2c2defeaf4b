"""Listing the ETL files in the pod: a missing dir is proven by test -d, a vanishing file is not "no data"."""

from __future__ import annotations

import shutil

import pytest
from kubecost_etl.kube.exec import ExecError
from kubecost_etl.kube.pod_files import EtlDirMissing, dir_exists, list_files
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore import pod_dirs
from kubecost_etl.restore.pod_dirs import RestoreDirs

ETL = "/var/configs/db/etl"
VANISHED = "stat: cannot stat '/var/configs/db/etl/bingen/x': No such file or directory"


@pytest.fixture
def pod(simulator, etl_dir):
    sim = simulator(etl_dir)
    core = sim.core_v1()
    target = ExecTarget(find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "cost-model", ETL)
    return sim, core, target, etl_dir


def test_a_file_vanishing_during_the_listing_is_listed_again_not_read_as_no_data(pod):
    sim, core, target, etl = pod
    expected = sorted(p.relative_to(etl).as_posix() for p in etl.rglob("*") if p.is_file())
    sim.set_faults(
        exec_fail_pattern=r"^find \S+ -type f -exec stat", exec_fail_times=2, exec_fail_stderr=VANISHED
    )
    files, _ = list_files(core, target)
    assert [f.path for f in files] == expected

    sim.set_faults(
        exec_fail_pattern=r"^find \S+ -type f -exec stat", exec_fail_times=5, exec_fail_stderr=VANISHED
    )
    with pytest.raises(ExecError) as failed:
        list_files(core, target)
    assert not isinstance(failed.value, EtlDirMissing) and "although it exists" in str(failed.value)


def test_a_missing_etl_dir_is_proven_by_test_d(pod):
    sim, core, target, etl = pod
    assert dir_exists(core, target, ETL)
    shutil.rmtree(etl)
    assert not dir_exists(core, target, ETL)
    with pytest.raises(EtlDirMissing):
        list_files(core, target)
    sim.set_faults(exec_lose_status_pattern=r"^test -d")  # no answer is not an answer
    with pytest.raises(ExecError):
        dir_exists(core, target, ETL)


def test_inspect_sees_the_live_dir_although_a_sibling_vanished(pod):
    sim, core, target, _ = pod
    dirs = RestoreDirs(ETL, "tok")
    sim.set_faults(exec_fail_pattern=r"^find /var/configs/db -mindepth 1", exec_fail_stderr=VANISHED)
    state = pod_dirs.inspect(core, target, dirs)
    assert state.live and not state.staging and not state.previous
