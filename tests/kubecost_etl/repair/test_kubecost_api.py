"""The repair calls against the simulated cost-model: every route to it, and every kind of refusal."""

from __future__ import annotations

import dataclasses

import pytest
from kubecost_etl.repair.kubecost_api import KubecostApi, RepairRequestFailed
from kubecost_etl.repair.profiles import PROFILES, get_profile
from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp

V1 = get_profile("v1")
WINDOW = (
    "2026-01-01T00:00:00Z,2026-01-02T00:00:00Z"  # the simulator repairs nothing this old; it still answers
)
SECRET = "Bearer do-not-log-me"


def routes(cluster) -> dict[str, KubecostApi]:
    core = cluster.core()
    return {
        "service proxy :9090 /model": KubecostApi(
            ServiceProxyHttp(core.api_client, "kubecost", "kubecost-cost-analyzer:9090", "/model")
        ),
        "service proxy :9003": KubecostApi(
            ServiceProxyHttp(core.api_client, "kubecost", "kubecost-cost-analyzer:9003")
        ),
        "URL :9090 /model": KubecostApi(
            DirectHttp(
                cluster.sim.frontend_url + "/model", {"Authorization": SECRET}, allow_insecure_http=True
            )
        ),
        "URL :9003": KubecostApi(DirectHttp(cluster.sim.costmodel_url)),
    }


def test_every_step_is_accepted_on_every_route(repair_cluster):
    steps = {step.name: step for profile in PROFILES.values() for step in profile.steps}
    expected_data = {
        "asset": "Repairing Asset ETL",
        "allocation": "Repairing Allocation ETL",
        "cloudUsage": "Cloud Usage Repair process has begun for [2026-01-01T00:00:00+0000, "
        "2026-01-02T00:00:00+0000) for all providers",
        "reconciliation": "Reconciliation Repair process has begun for [2026-01-01T00:00:00+0000, "
        "2026-01-02T00:00:00+0000) for all providers",
        "cloudCost": "Rebuilding Cloud Usage For All Providers",
    }
    for route, api in routes(repair_cluster).items():
        for name, step in steps.items():
            answer = api.repair(step, WINDOW)
            assert (answer.status, answer.code, answer.data) == (200, 200, expected_data[name]), (route, name)
            assert SECRET not in answer.request and "window=2026-01-01T00%3A00%3A00Z" in answer.request
    calls = repair_cluster.repair_calls()
    assert len(calls) == 4 * len(steps) and all(query == {"window": WINDOW} for _, query in calls)


def test_provider_is_sent_only_to_steps_that_take_it(repair_cluster):
    api = routes(repair_cluster)["URL :9003"]
    assert (
        "for provider aws-123456789012" in api.repair(V1.step("cloudUsage"), WINDOW, "aws-123456789012").data
    )
    api.repair(V1.step("asset"), WINDOW, "aws-123456789012")
    assert [query.get("provider") for _, query in repair_cluster.repair_calls()] == ["aws-123456789012", None]
    assert api.cloud_integration_keys() == ["aws-123456789012"]


def test_a_5xx_is_retryable_and_a_4xx_is_not(repair_cluster):
    repair_cluster.sim.set_faults(repair_http_500=["asset"])
    for route, api in routes(repair_cluster).items():
        with pytest.raises(RepairRequestFailed) as failed:
            api.repair(V1.step("asset"), WINDOW)
        assert failed.value.retryable, route
        assert "Kubecost answered HTTP 500: Internal Server Error: simulated failure" in str(failed.value)
        with pytest.raises(RepairRequestFailed) as refused:
            api.repair(V1.step("cloudUsage"), WINDOW, "no-such-key")
        assert not refused.value.retryable, route
        assert "refused it with HTTP 400: Invalid parameter: provider: no cloud integration with key" in str(
            refused.value
        )
        with pytest.raises(RepairRequestFailed, match="illegal window") as illegal:
            api.repair(V1.step("allocation"), "last tuesday")
        assert not illegal.value.retryable


def test_proxy_and_url_mistakes_are_told_apart_from_kubecost_answers(repair_cluster):
    core = repair_cluster.core()
    no_service = KubecostApi(ServiceProxyHttp(core.api_client, "kubecost", "kubecost-missing:9090", "/model"))
    with pytest.raises(RepairRequestFailed) as missing:
        no_service.repair(V1.step("asset"), WINDOW)
    assert not missing.value.retryable
    assert "service proxy answered HTTP 404" in str(missing.value) and "repair.kubecost_service" in str(
        missing.value
    )

    wrong_path = KubecostApi(
        DirectHttp(repair_cluster.sim.frontend_url, {"Authorization": SECRET}, allow_insecure_http=True)
    )
    with pytest.raises(RepairRequestFailed) as not_found:
        wrong_path.repair(V1.step("asset"), WINDOW)  # port 9090 serves the API under /model only
    assert not not_found.value.retryable and "kubecost_api_path" in str(not_found.value)
    assert SECRET not in str(not_found.value)

    not_kubecost = dataclasses.replace(V1.step("asset"), path="/healthz")  # 200 with a text body
    with pytest.raises(RepairRequestFailed, match="not Kubecost's JSON") as text:
        KubecostApi(DirectHttp(repair_cluster.sim.costmodel_url)).repair(not_kubecost, WINDOW)
    assert not text.value.retryable


def test_no_answer_at_all_is_retryable():
    with pytest.raises(RepairRequestFailed, match="no answer") as failed:
        KubecostApi(DirectHttp("http://127.0.0.1:9", timeout=2)).repair(V1.step("asset"), WINDOW)
    assert failed.value.retryable
