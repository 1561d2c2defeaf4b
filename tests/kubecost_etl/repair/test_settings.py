"""A cluster's ``repair:`` settings: defaults, every key, and mistakes named by cluster and field."""

from __future__ import annotations

import pytest
from kubecost_etl.config import ConfigError
from kubecost_etl.repair.settings import RepairSettings, parse_repair_settings

WHERE = "cluster 'prod'"


def test_defaults_reach_kubecost_and_prometheus_through_the_service_proxy():
    settings = parse_repair_settings(None, WHERE)
    assert settings == RepairSettings()
    assert (settings.kubecost_url, settings.kubecost_service, settings.kubecost_api_path) == (
        None,
        "kubecost-cost-analyzer:9090",
        "/model",
    )
    assert (settings.prometheus_url, settings.prometheus_service) == (None, "kubecost-prometheus-server:80")
    assert settings.tls_verify is True
    assert settings.min_coverage == 1.0 and "node_total_hourly_cost" in settings.required_metrics
    assert "container_cpu_allocation" in settings.required_metrics


def test_every_key(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = parse_repair_settings(
        {
            "kubecost_url": "https://kubecost.example.com/",
            "kubecost_api_path": "/model/",
            "kubecost_conn_id": "kc",
            "kubecost_service": "cost-analyzer:9003",
            "verify_tls": True,
            "ca_file": str(ca),
            "prometheus_url": "http://prometheus:9090",
            "prometheus_service": "prom:http",
            "prometheus_retention": "97h",
            "max_window_days": 7,
            "step_timeout_minutes": 30,
            "poll_seconds": 2,
            "request_timeout_seconds": 5.5,
            "min_coverage": 0.75,
            "required_metrics": ["node_total_hourly_cost", 'container_cpu_allocation{cluster_id="prod"}'],
        },
        WHERE,
    )
    assert settings.min_coverage == 0.75
    assert settings.required_metrics == (
        "node_total_hourly_cost",
        'container_cpu_allocation{cluster_id="prod"}',
    )
    assert (
        parse_repair_settings({"prometheus_retention": "15d or 10GiB"}, WHERE).prometheus_retention
        == "15d or 10GiB"
    )
    assert settings.kubecost_url == "https://kubecost.example.com" and settings.kubecost_api_path == "/model"
    assert settings.tls_verify == str(ca)
    assert (settings.max_window_days, settings.poll_seconds, settings.request_timeout_seconds) == (
        7,
        2.0,
        5.5,
    )
    assert parse_repair_settings({"verify_tls": False, "kubecost_api_path": ""}, WHERE).tls_verify is False


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("yes", "repair: expected a mapping"),
        ({"kubecost_uri": "x"}, "repair: unknown key(s) ['kubecost_uri']"),
        ({"kubecost_url": "kubecost.example.com"}, "repair.kubecost_url: expected an http(s) URL"),
        ({"prometheus_url": "ftp://p"}, "repair.prometheus_url: expected an http(s) URL"),
        (
            {"kubecost_url": "https://admin:hunter2@kubecost"},
            "repair.kubecost_url: the URL holds credentials",
        ),
        ({"kubecost_api_path": "model"}, "repair.kubecost_api_path: expected '' or a path starting with '/'"),
        ({"kubecost_service": "Cost Analyzer"}, "repair.kubecost_service: 'Cost Analyzer' is not a service"),
        ({"verify_tls": "no"}, "repair.verify_tls: expected true or false"),
        ({"max_window_days": 0}, "repair.max_window_days: expected a positive number"),
        ({"step_timeout_minutes": 1.5}, "repair.step_timeout_minutes: expected a positive number"),
        ({"poll_seconds": True}, "repair.poll_seconds: expected a positive number"),
        (
            {"prometheus_retention": "two weeks"},
            "repair.prometheus_retention: 'two weeks' is not a retention such as",
        ),
        (
            {"prometheus_retention": "15d or 20d"},
            "repair.prometheus_retention: '15d or 20d' is not a retention",
        ),
        ({"required_metrics": []}, "repair.required_metrics: expected a non-empty list"),
        (
            {"required_metrics": "node_total_hourly_cost"},
            "repair.required_metrics: expected a non-empty list",
        ),
        (
            {"required_metrics": ["rate(x[5m])"]},
            "repair.required_metrics: 'rate(x[5m])' is not a metric name",
        ),
        ({"required_metrics": ["up", "up"]}, "repair.required_metrics: a metric is listed twice"),
        ({"min_coverage": 0}, "repair.min_coverage: expected a fraction of the day's hours in (0, 1]"),
        ({"min_coverage": 1.5}, "repair.min_coverage: expected a fraction"),
        ({"min_coverage": True}, "repair.min_coverage: expected a fraction"),
        ({"kubecost_conn_id": "kc"}, "repair.kubecost_conn_id: only used with kubecost_url"),
        ({"ca_file": "/nonexistent/ca.pem"}, "repair.ca_file: /nonexistent/ca.pem does not exist"),
        (
            {"kubecost_url": "http://kubecost:9090", "kubecost_conn_id": "kc"},
            "repair.kubecost_url: plain http:// would send the credentials of kubecost_conn_id unencrypted",
        ),
        ({"allow_insecure_http": "yes"}, "repair.allow_insecure_http: expected true or false"),
    ],
)
def test_mistakes_name_the_cluster_and_the_field(raw, problem):
    with pytest.raises(ConfigError) as refused:
        parse_repair_settings(raw, WHERE)
    assert str(refused.value).startswith(f"{WHERE}: ") and problem in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_credentials_over_plain_http_only_when_allowed():
    raw = {"kubecost_url": "http://kubecost:9090", "kubecost_conn_id": "kc", "allow_insecure_http": True}
    assert parse_repair_settings(raw, WHERE).allow_insecure_http is True
    # without credentials, plain http needs no permission (the service proxy and an open Prometheus)
    assert (
        parse_repair_settings({"prometheus_url": "http://prometheus:9090"}, WHERE).allow_insecure_http
        is False
    )
