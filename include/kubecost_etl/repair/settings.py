"""A cluster's repair settings: the ``repair:`` mapping of a cluster entry (all keys optional).

```yaml
clusters:
  - id: prod-east
    repair:
      kubecost_url: https://kubecost.example.com    # default: the Kubernetes API's service proxy
      kubecost_api_path: /model                     # path of the cost-model API below the URL/service
      kubecost_conn_id: kubecost_prod               # Airflow connection with credentials for kubecost_url
      kubecost_service: kubecost-cost-analyzer:9090 # service (name:port) reached through the proxy
      verify_tls: true                              # for kubecost_url and prometheus_url
      allow_insecure_http: false                    # credentials over a plain http:// URL
                                                    # (refused unless true)
      ca_file: /etc/ssl/internal-ca.pem
      prometheus_url: http://prometheus.example:9090  # or a Thanos Query URL (the data check asks it)
      prometheus_service: kubecost-prometheus-server:80
      prometheus_retention: 15d                     # overrides asking Prometheus ("15d or 10GiB" too)
      required_metrics: [node_total_hourly_cost, container_cpu_allocation]  # default: DEFAULT_METRICS
      min_coverage: 1.0                             # share of a day's hours that must hold every metric
      max_window_days: 31
      step_timeout_minutes: 120
      poll_seconds: 10
      request_timeout_seconds: 30
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from kubecost_etl.errors import ConfigError
from kubecost_etl.repair.prometheus_coverage import DEFAULT_METRICS, check_metrics, check_min_coverage
from kubecost_etl.repair.retention import parse_retention

_SERVICE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:[A-Za-z0-9-]+)?$")


@dataclass(frozen=True)
class RepairSettings:
    kubecost_url: str | None = None
    kubecost_api_path: str = "/model"
    kubecost_conn_id: str | None = None
    kubecost_service: str = "kubecost-cost-analyzer:9090"
    verify_tls: bool = True
    allow_insecure_http: bool = False  # send connection credentials to a plain http:// URL
    ca_file: str | None = None
    prometheus_url: str | None = None
    prometheus_service: str = "kubecost-prometheus-server:80"
    prometheus_retention: str | None = None
    required_metrics: tuple[str, ...] = DEFAULT_METRICS
    min_coverage: float = 1.0
    max_window_days: int = 31
    step_timeout_minutes: int = 120
    poll_seconds: float = 10.0
    request_timeout_seconds: float = 30.0

    @property
    def tls_verify(self) -> bool | str:
        """What ``requests`` takes as ``verify``: a CA bundle path, or whether to verify at all."""
        return self.ca_file if self.ca_file and self.verify_tls else self.verify_tls


def parse_repair_settings(raw: Any, where: str) -> RepairSettings:
    """Validate a cluster's ``repair:`` mapping; ``where`` names the cluster in messages."""
    if raw is None:
        return RepairSettings()
    where = f"{where}: repair"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    known = {f.name for f in fields(RepairSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key in ("kubecost_url", "prometheus_url"):
        if raw.get(key) is not None:
            values[key] = _url(raw[key], f"{where}.{key}")
    for key in ("kubecost_conn_id", "ca_file", "prometheus_retention"):
        if raw.get(key) is not None:
            values[key] = _text(raw[key], f"{where}.{key}")
    if "kubecost_api_path" in raw:
        path = raw["kubecost_api_path"] or ""
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise ConfigError(
                f"{where}.kubecost_api_path: expected '' or a path starting with '/', got {path!r}"
            )
        values["kubecost_api_path"] = path.rstrip("/")
    for key in ("kubecost_service", "prometheus_service"):
        if key in raw:
            service = _text(raw[key], f"{where}.{key}")
            if not _SERVICE.match(service):
                raise ConfigError(f"{where}.{key}: {service!r} is not a service as name or name:port")
            values[key] = service
    for key in ("verify_tls", "allow_insecure_http"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}.{key}: expected true or false")
            values[key] = raw[key]
    for key in ("max_window_days", "step_timeout_minutes"):
        if key in raw:
            values[key] = _positive(raw[key], f"{where}.{key}", int)
    for key in ("poll_seconds", "request_timeout_seconds"):
        if key in raw:
            values[key] = float(_positive(raw[key], f"{where}.{key}", (int, float)))
    if "prometheus_retention" in values:
        try:
            parse_retention(values["prometheus_retention"])
        except ValueError as exc:
            raise ConfigError(f"{where}.prometheus_retention: {exc}") from None
    if "required_metrics" in raw:
        values["required_metrics"] = check_metrics(raw["required_metrics"], f"{where}.required_metrics")
    if "min_coverage" in raw:
        values["min_coverage"] = check_min_coverage(raw["min_coverage"], f"{where}.min_coverage")
    if values.get("kubecost_conn_id") and not values.get("kubecost_url"):
        raise ConfigError(
            f"{where}.kubecost_conn_id: only used with kubecost_url (the service proxy uses the "
            "cluster's own Kubernetes credentials)"
        )
    for url_key, conn_key in (("kubecost_url", "kubecost_conn_id"), ("prometheus_url", "prometheus_conn_id")):
        if (
            values.get(conn_key)
            and urlsplit(values.get(url_key) or "").scheme == "http"
            and not values.get("allow_insecure_http")
        ):
            raise ConfigError(
                f"{where}.{url_key}: plain http:// would send the credentials of {conn_key} "
                f"unencrypted; use https://, or set {where.rsplit(': ', 1)[-1]}.allow_insecure_http: "
                "true if the network is trusted"
            )
    if values.get("ca_file") and not os.access(values["ca_file"], os.R_OK):
        raise ConfigError(f"{where}.ca_file: {values['ca_file']} does not exist or is not readable")
    return RepairSettings(**values)


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"{where}: expected an http(s) URL, got {value!r}")
    if urlsplit(value).username is not None:  # never echo the value: it holds a credential
        raise ConfigError(
            f"{where}: the URL holds credentials; put them in an Airflow connection "
            "(repair.kubecost_conn_id) instead"
        )
    return value.rstrip("/")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


def _positive(value: Any, where: str, kinds):
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return value
