"""GET requests to Kubecost or Prometheus: to a configured URL, or through the Kubernetes API's service proxy.

The service proxy (``/api/v1/namespaces/<ns>/services/<name:port>/proxy/<path>``) needs no
ingress and uses the cluster's own connection. Its own errors (no such service, no ready
endpoint, RBAC) come as a Kubernetes ``Status`` body and are told apart from the backend's.
Header values (credentials) are never part of a description or an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from kubecost_etl.errors import ConfigError, TransientError
from kubecost_etl.redact import redact, register_secrets

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"^[^\x00-\x08\x0a-\x1f\x7f]*$")  # visible characters, spaces and tabs only


class TransportError(TransientError, RuntimeError):
    """The request got no HTTP answer at all (connection refused, timeout, TLS failure)."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str
    api_server_status: dict | None = None  # a Kubernetes Status object: the proxy itself answered

    def json(self):
        return json.loads(self.body)

    def excerpt(self, limit: int = 300) -> str:
        text = self.body.decode("utf-8", "replace").strip()
        return text if len(text) <= limit else text[:limit] + "..."


def check_headers(
    headers: dict[str, str] | None, where: str = "the connection's extra.headers"
) -> dict[str, str]:
    """Header names and values ``requests`` will send; a bad one is a ``ConfigError`` naming the header, never
    its value (``requests`` itself would raise ``InvalidHeader`` quoting the value: a bearer token)."""
    checked = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ConfigError(f"{where}: {redact(name)!r} is not a valid header name")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: the value of header {name!r} is not a string")
        register_secrets([value])  # header values are credentials: never in a log line or a message
        if not _HEADER_VALUE.match(value) or value != value.strip(" \t"):
            raise ConfigError(
                f"{where}: the value of header {name!r} holds a line break, a control character or "
                "leading/trailing whitespace (value not shown); fix it in the connection"
            )
        checked[name] = value
    return checked


class DirectHttp:
    """Requests to ``base_url`` (plus an API path) with optional headers and TLS settings.

    Headers are checked up front (``check_headers``) and their values, with the basic-auth password,
    registered as secrets (``kubecost_etl.redact``). Credentials over plain ``http://`` are refused
    unless ``allow_insecure_http`` is true (``repair.allow_insecure_http``; the configuration check
    refuses that combination too).
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 30.0,
        allow_insecure_http: bool = False,
    ):
        import requests

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"not an http(s) URL: {redact(base_url)!r}")
        headers = check_headers(headers)
        if auth:
            register_secrets([auth[1]])
        if parts.scheme == "http" and (headers or auth) and not allow_insecure_http:
            raise ConfigError(
                f"{parts.scheme}://{parts.hostname}: refusing to send credentials over plain http; "
                "use https:// or set repair.allow_insecure_http: true"
            )
        self.base_url = base_url.rstrip("/")
        self.description = (
            f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        )
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.session.auth = auth
        self.session.verify = verify

    def get(self, path: str, params: dict[str, str] | None = None) -> HttpAnswer:
        import requests

        try:
            response = self.session.get(self.base_url + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransportError(f"GET {self.description}{path}: {type(exc).__name__}: {exc}") from None
        return HttpAnswer(response.status_code, response.content, response.headers.get("Content-Type", ""))


class ServiceProxyHttp:
    """Requests through the Kubernetes API's service proxy with a (sync) ``kubernetes`` ApiClient."""

    def __init__(self, api_client, namespace: str, service: str, api_path: str = "", timeout: float = 30.0):
        self.api_client = api_client
        self.base_path = (
            f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service, safe=':')}/proxy{api_path}"
        )
        self.description = f"service {namespace}/{service} (Kubernetes API service proxy){api_path}"
        self.timeout = timeout

    def get(self, path: str, params: dict[str, str] | None = None) -> HttpAnswer:
        answer = raw_get(
            self.api_client,
            self.base_path + path,
            params,
            "application/json, text/plain, */*",
            self.timeout,
            f"GET {self.description}{path}",
        )
        return HttpAnswer(answer.status, answer.body, answer.content_type, _kubernetes_status(answer))


def raw_get(
    api_client, resource_path: str, params: dict[str, str] | None, accept: str, timeout: float, what: str
) -> HttpAnswer:
    """A GET on the Kubernetes API with a (sync) ``kubernetes`` ApiClient, any status returned as
    an answer.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        response = api_client.call_api(
            resource_path,
            "GET",
            query_params=list((params or {}).items()),
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
    except ApiException as exc:  # the client raises on non-2xx statuses even without preloading
        if not exc.status:
            raise TransportError(f"{what}: {exc.reason}") from None
        body = exc.body if isinstance(exc.body, bytes) else (exc.body or "").encode()
        return HttpAnswer(exc.status, body, (exc.headers or {}).get("Content-Type", ""))
    except HTTPError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from None
    return HttpAnswer(response.status, response.data, response.headers.get("Content-Type", ""))


def _kubernetes_status(answer: HttpAnswer) -> dict | None:
    if answer.status < 400 or "json" not in answer.content_type:
        return None
    try:
        body = answer.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1":
        return body
    return None
