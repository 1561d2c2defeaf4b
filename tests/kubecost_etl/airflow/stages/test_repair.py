"""The repair stages against the simulator: nothing reaches Kubecost before the preflight passes."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from kubecost_etl.airflow.stages import repair as stages
from kubecost_etl.etl.windows import DAY, iso
from kubecost_etl.repair.kubecost_api import RepairRequestFailed

from tests.kubecost_etl.etl.test_windows import BAD, NOW
from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import CLUSTER_ID

repair_cluster, repair_cluster_factory = harness.repair_cluster, harness.repair_cluster_factory  # fixtures


def params(window, **extra) -> dict:
    return {
        "cluster": CLUSTER_ID,
        "window": window,
        "profile": "v1",
        "provider": None,
        "backup_first": True,
        "dry_run": False,
        **extra,
    }


def days_ago(count: int) -> str:
    today = int(time.time()) // DAY * DAY
    return f"{iso(today - count * DAY)},{iso(today - (count - 1) * DAY)}"


def test_bad_windows_fail_in_preflight_naming_the_problem_before_any_call(repair_cluster):
    assert len(BAD) >= 15
    for window, problem in BAD:
        with pytest.raises(AirflowFailException) as refused:
            stages.preflight(params(window), now=NOW)
        assert str(refused.value).startswith("preflight: ") and problem in str(refused.value), window
    assert repair_cluster.sim.request_log_lines() == []  # not even Prometheus was asked


def test_a_window_older_than_prometheus_keeps_is_refused_before_any_repair_call(repair_cluster_factory):
    cluster = repair_cluster_factory(prometheus_retention="3d", days=12)
    with pytest.raises(AirflowFailException) as refused:
        stages.preflight(params(days_ago(10)))
    oldest = iso(int(time.time()) // DAY * DAY - 2 * DAY)  # now - 3d, rounded up to midnight
    assert "Prometheus keeps 3d of metrics" in str(refused.value)
    assert f"the oldest repairable time is {oldest}" in str(refused.value)
    assert cluster.repair_calls() == []
    asked = {entry["path"] for entry in cluster.sim.request_log_lines()}
    assert "/api/v1/status/runtimeinfo" in asked and not any("repair" in path for path in asked)


def test_a_configured_retention_overrides_prometheus(repair_cluster):
    repair_cluster.configure(prometheus_retention="1d")
    with pytest.raises(
        AirflowFailException, match="keeps 1d of metrics .repair.prometheus_retention in the config"
    ):
        stages.preflight(params("3d"))
    assert repair_cluster.sim.request_log_lines() == []


def test_without_a_retention_the_repair_is_refused_saying_how_to_configure(repair_cluster):
    repair_cluster.configure(prometheus_service="no-prometheus:80")
    with pytest.raises(AirflowFailException, match="set repair.prometheus_retention"):
        stages.preflight(params("yesterday"))
    assert repair_cluster.repair_calls() == []


def test_cluster_config_and_param_mistakes_are_caught_in_preflight(repair_cluster):
    with pytest.raises(AirflowFailException, match=r"unknown cluster 'prod'; configured: \['sim'\]"):
        stages.preflight(params("yesterday", cluster="prod"))
    with pytest.raises(AirflowFailException, match="unknown repair profile 'v9'"):
        stages.preflight(params("yesterday", profile="v9"))
    with pytest.raises(AirflowFailException, match="provider 'aws 1' is not a cloud integration key"):
        stages.preflight(params("yesterday", provider="aws 1"))
    repair_cluster.configure(max_window_days=0)
    with pytest.raises(AirflowFailException, match="repair.max_window_days: expected a positive number"):
        stages.preflight(params("yesterday"))
    repair_cluster.configure(max_window_days=31, with_backup=False)
    with pytest.raises(AirflowFailException, match="backup.object_store: missing"):
        stages.preflight(params("yesterday"))
    assert stages.preflight(params("yesterday", backup_first=False, cluster=None))["cluster_id"] == CLUSTER_ID
    assert repair_cluster.repair_calls() == []


def test_a_dry_run_plans_every_step_and_sends_nothing(repair_cluster):
    plan = stages.preflight(params("yesterday", dry_run=True, profile="v2"))
    assert [s["step"] for s in plan["steps"]] == ["asset", "allocation", "cloudCost"]
    assert all(
        plan["window"]["query"].replace(":", "%3A").replace(",", "%2C") in s["request"] for s in plan["steps"]
    )
    with pytest.raises(AirflowSkipException, match="dry run"):
        stages.backup(plan)
    assert stages.choose_steps(plan) is None
    assert stages.summary(plan, [])["lines"][0].startswith("Asset: dry run, not sent")
    assert repair_cluster.repair_calls() == []


def test_a_request_returns_what_its_sensor_watches(repair_cluster):
    plan = stages.preflight(params("yesterday", backup_first=False))
    assert stages.choose_steps(plan) == "v1.request_asset"
    watch = stages.request_step(plan, "cloudUsage")
    assert watch["answer"]["code"] == 200 and watch["answer"]["data"].startswith("Cloud Usage Repair process")
    assert watch["expected"]["provider_keys"] == ["aws-123456789012"]  # learnt from /etl/status
    assert watch["pod"]["name"] == repair_cluster.sim.cost_model_pod() and watch["pod"]["restarts"] == 0
    assert watch["kube"]["kubeconfig"] == str(repair_cluster.sim.kubeconfig)
    assert repair_cluster.repair_calls() == [
        ("/model/etl/cloudUsage/repair", {"window": plan["window"]["query"]})
    ]


def test_a_5xx_is_left_to_airflow_retries_and_a_4xx_fails_at_once(repair_cluster):
    plan = stages.preflight(params("yesterday", backup_first=False, provider="no-such-key"))
    repair_cluster.sim.set_faults(repair_http_500=["asset"])
    with pytest.raises(RepairRequestFailed, match="HTTP 500") as server_error:
        stages.request_step(plan, "asset")
    assert server_error.value.retryable and not isinstance(server_error.value, AirflowFailException)
    with pytest.raises(AirflowFailException, match="HTTP 400: Invalid parameter: provider"):
        stages.request_step(plan, "cloudUsage")


def test_a_step_requested_after_the_window_aged_out_is_refused(repair_cluster):
    plan = stages.preflight(params("yesterday", backup_first=False))
    plan["retention"]["seconds"] = 3600  # as if Prometheus' cutoff had moved past the window meanwhile
    with pytest.raises(AirflowFailException, match="Allocation: window 'yesterday' starts on"):
        stages.request_step(plan, "allocation")
    assert repair_cluster.repair_calls() == []


def test_the_summary_fails_the_run_when_a_step_did_not_finish(repair_cluster):
    plan = stages.preflight(params("yesterday", backup_first=False, profile="v2"))
    done = {
        "step": "asset",
        "title": "Asset",
        "request": "GET x",
        "seconds": 1.5,
        "days_done": 1,
        "days_expected": 1,
        "answer": {"status": 200, "code": 200, "data": "Repairing Asset ETL"},
        "passes": [{"pass": "Asset[1d]", "done": 1, "expected": 1}],
    }
    with pytest.raises(AirflowFailException, match="incomplete: Allocation, CloudCost did not finish"):
        stages.summary(plan, [done, None, None])
    with pytest.raises(AirflowFailException, match="preflight did not pass"):
        stages.summary(None, [])


class _RecordingKubecost(BaseHTTPRequestHandler):
    """A stand-in Kubecost URL (e.g. an ingress) that records the headers each request carried."""

    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.seen.append(dict(self.headers))
        body = b'{"code":200,"data":"Repairing Asset ETL"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_kubecost_url_gets_the_connections_credentials_and_they_are_never_logged(
    repair_cluster, monkeypatch, caplog
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBECOST_INGRESS",
        json.dumps(
            {
                "conn_type": "http",
                "login": "svc",
                "password": "pw-secret",
                "extra": {"headers": {"X-Api-Key": "key-secret"}},
            }
        ),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingKubecost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        repair_cluster.configure(
            kubecost_url=f"http://127.0.0.1:{server.server_port}",
            kubecost_conn_id="kubecost_ingress",
            allow_insecure_http=True,
        )  # a loopback test server: plain http
        with caplog.at_level(logging.DEBUG):
            watch = stages.request_step(stages.preflight(params("yesterday", backup_first=False)), "asset")
    finally:
        server.shutdown()
    headers = _RecordingKubecost.seen[-1]
    assert headers["X-Api-Key"] == "key-secret"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"svc:pw-secret").decode()
    assert watch["request"].startswith(
        f"GET http://127.0.0.1:{server.server_port}/model/etl/asset/repair?window="
    )
    assert "secret" not in caplog.text and "secret" not in json.dumps(watch)


def test_a_connection_whose_headers_are_not_a_mapping_is_refused(repair_cluster, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBECOST_INGRESS",
        json.dumps({"conn_type": "http", "extra": {"headers": ["X-Api-Key: key-secret"]}}),
    )
    repair_cluster.configure(
        kubecost_url="http://127.0.0.1:9", kubecost_conn_id="kubecost_ingress", allow_insecure_http=True
    )  # a loopback test server: plain http
    with pytest.raises(
        AirflowFailException, match="'kubecost_ingress': extra.headers must be a mapping"
    ) as refused:
        stages.preflight(params("yesterday", backup_first=False))
    assert "secret" not in str(refused.value)
    assert repair_cluster.repair_calls() == []
