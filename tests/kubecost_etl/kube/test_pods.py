"""Choosing the pod and the container that hold the ETL data, against the simulator."""

from __future__ import annotations

import pytest
from kubecost_etl.kube.exec import CommandNotFound
from kubecost_etl.kube.pods import PodNotFound, find_cost_model_pod
from kubecost_etl.kube.target import has_command, resolve_exec_target

ETL = "/var/configs/db/etl"


def test_the_ha_frontend_decoy_is_never_chosen(simulator):
    sim = simulator()
    # The decoy carries app=cost-analyzer too and is listed first: a naive pick takes it.
    pod = find_cost_model_pod(sim.core_v1(), "kubecost", "app=cost-analyzer")
    assert pod.name == sim.cost_model_pod() and pod.container == "cost-model"


def test_no_suitable_pod_says_what_was_passed_over(simulator):
    sim = simulator()
    with pytest.raises(PodNotFound, match=r"kubecost-cost-analyzer-frontend-\S+ \(no 'cost-model' container"):
        find_cost_model_pod(sim.core_v1(), "kubecost", "app.kubernetes.io/name=cost-analyzer-frontend")
    with pytest.raises(PodNotFound, match="no pods at all"):
        find_cost_model_pod(sim.core_v1(), "kubecost", "app=not-installed")


def test_command_probe_counts_any_exit_code_but_not_found(simulator):
    sim = simulator(no_tar=True)
    pod = find_cost_model_pod(sim.core_v1(), "kubecost", "app=cost-analyzer")
    assert has_command(sim.core_v1(), pod, "cost-model", ["sh", "-c", "exit 1"])
    assert not has_command(sim.core_v1(), pod, "cost-model", ["tar", "--help"])


def test_debug_containers_off_means_tar_runs_in_cost_model_and_fails_clearly(simulator):
    sim = simulator(no_tar=True)
    core = sim.core_v1()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), ETL, mode="never"
    )
    assert target.container == "cost-model" and not target.via_debug_container
    assert all(not pod["ephemeral_containers"] for pod in sim.state()["pods"])
    with pytest.raises(CommandNotFound):
        target.exec(core, ["tar", "cf", "-", "-C", ETL, "."]).output()


def test_a_running_debug_container_is_reused_not_added_again(simulator):
    sim = simulator(no_tar=True)
    core = sim.core_v1()
    pod = find_cost_model_pod(core, "kubecost", "app=cost-analyzer")
    first = resolve_exec_target(core, pod, ETL)
    second = resolve_exec_target(core, pod, ETL)
    assert first.via_debug_container and second.container == first.container
    [cost_model_pod] = [p for p in sim.state()["pods"] if p["name"] == pod.name]
    assert cost_model_pod["ephemeral_containers"] == [first.container]  # they can never be removed
