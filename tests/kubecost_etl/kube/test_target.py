"""Debug containers end (their sleep runs out, cost-model restarts in place): an ended one is never reused."""

from __future__ import annotations

import pytest
from kubecost_etl.kube.exec import ExecError
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import ensure_running, resolve_exec_target

ETL = "/var/configs/db/etl"


@pytest.mark.parametrize("restart_cost_model", [False, True], ids=["sleep-ran-out", "cost-model-restarted"])
def test_an_ended_debug_container_is_replaced_by_a_fresh_one(simulator, restart_cost_model):
    sim = simulator(no_tar=True)
    core = sim.core_v1()
    pod = find_cost_model_pod(core, "kubecost", "app=cost-analyzer")
    first = resolve_exec_target(core, pod, ETL, lifetime_seconds=600)
    assert ensure_running(core, first) == first  # running: kept
    spec = core.read_namespaced_pod(pod.name, "kubecost").spec.ephemeral_containers[0]
    assert spec.command == ["sleep", "600"]  # the configured lifetime

    assert sim.end_ephemeral_containers(restart_cost_model) == [first.container]
    with pytest.raises(ExecError):
        first.exec(core, ["ls", ETL]).output()
    again = resolve_exec_target(core, pod, ETL)  # a new resolve never picks the ended one either
    fresh = ensure_running(core, first)
    assert again.container != first.container and fresh.container == again.container  # reused, not a third
    assert fresh.etl_root == first.etl_root and fresh.via_debug_container
    assert b"bingen" in fresh.exec(core, ["ls", fresh.etl_root]).output()
    [state] = [p for p in sim.state()["pods"] if p["name"] == pod.name]
    assert state["ephemeral_containers"] == [first.container, fresh.container]
