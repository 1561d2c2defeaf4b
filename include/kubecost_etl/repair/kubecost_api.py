"""The repair calls to Kubecost's cost-model, with their answers checked.

Every repair endpoint is a GET that answers at once (``{"code":200,"data":...}``) and works in the
background. Error bodies are undocumented (JSON ``{"code":N,"message":...}`` or plain text), so
both the HTTP status and the body's ``code`` are checked. A 5xx (or no answer) is worth retrying;
a 4xx is not: the same request would be refused again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from kubecost_etl.errors import KubecostEtlError, Refusal
from kubecost_etl.repair.profiles import Step
from kubecost_etl.repair.transport import HttpAnswer, TransportError


class RepairRequestFailed(KubecostEtlError, RuntimeError):
    """A repair call failed; ``retryable`` (a 5xx, no answer) is retried, anything else is a refusal."""

    def __new__(cls, message: str, retryable: bool):
        if not retryable and cls is RepairRequestFailed:
            cls = RepairRequestRefused  # a 4xx or a foreign answer: the same call would fail again
        return super().__new__(cls, message, retryable)

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class RepairRequestRefused(RepairRequestFailed, Refusal):
    """Kubecost refused the call (4xx, a body that is not its JSON): not retried."""


@dataclass(frozen=True)
class RepairAnswer:
    step: str
    request: str  # where and what was asked (never headers)
    status: int
    code: int
    data: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


class KubecostApi:
    def __init__(self, http):
        self.http = http

    def describe(self, step: Step, window_query: str, provider: str | None) -> str:
        return (
            f"GET {self.http.description}{step.path}?{urlencode(self._params(step, window_query, provider))}"
        )

    def repair(self, step: Step, window_query: str, provider: str | None = None) -> RepairAnswer:
        request = self.describe(step, window_query, provider)
        started = time.monotonic()
        try:
            answer = self.http.get(step.path, self._params(step, window_query, provider))
        except TransportError as exc:
            raise RepairRequestFailed(f"{step.title} repair: no answer: {exc}", retryable=True) from None
        code, data = _check(step, answer)
        return RepairAnswer(
            step.name, request, answer.status, code, data, round(time.monotonic() - started, 3)
        )

    def cloud_integration_keys(self) -> list[str] | None:
        """The cloud integration keys ``/etl/status`` lists (its shape is unconfirmed: None if unreadable)."""
        try:
            answer = self.http.get("/etl/status")
            cloud = answer.json()["data"]["cloud"] if answer.status == 200 else None
        except (TransportError, ValueError, KeyError, TypeError):
            return None
        return sorted(cloud) if isinstance(cloud, dict) and cloud else None

    @staticmethod
    def _params(step: Step, window_query: str, provider: str | None) -> dict[str, str]:
        params = {"window": window_query}
        if provider and step.accepts_provider:
            params["provider"] = provider
        return params


def _check(step: Step, answer: HttpAnswer) -> tuple[int, str]:
    what = f"{step.title} repair"
    if answer.api_server_status is not None:
        raise _proxy_failure(what, answer)
    body = _json_body(answer)
    code = body.get("code") if isinstance(body, dict) else None
    detail = _detail(body, answer)
    if answer.status >= 500 or (isinstance(code, int) and code >= 500):
        raise RepairRequestFailed(f"{what}: Kubecost answered HTTP {answer.status}: {detail}", retryable=True)
    if answer.status >= 400:
        hint = {
            401: " (check the credentials of repair.kubecost_conn_id)",
            403: " (check the credentials of repair.kubecost_conn_id)",
            404: " (is repair.kubecost_api_path right for this URL?)",
        }.get(answer.status, "")
        raise RepairRequestFailed(
            f"{what}: Kubecost refused it with HTTP {answer.status}{hint}: {detail}", retryable=False
        )
    if not isinstance(body, dict):
        raise RepairRequestFailed(
            f"{what}: HTTP {answer.status} but the body is not Kubecost's JSON "
            f"({answer.content_type or 'no type'}: "
            f"{answer.excerpt(120)}); does the URL reach the cost-model API?",
            retryable=False,
        )
    if code != 200:
        raise RepairRequestFailed(
            f"{what}: HTTP {answer.status} but the body says code {code!r}: {detail}", retryable=False
        )
    return code, str(body.get("data", ""))


def _json_body(answer: HttpAnswer):
    try:
        return answer.json()
    except ValueError:
        return None


def _detail(body, answer: HttpAnswer) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return answer.excerpt()


def _proxy_failure(what: str, answer: HttpAnswer) -> RepairRequestFailed:
    status = answer.api_server_status or {}
    message = status.get("message", "")
    if answer.status == 404:
        hint = "the service does not exist there (set repair.kubecost_service, or repair.kubecost_url)"
    elif answer.status == 403:
        hint = "the cluster's credentials may not 'get' services/proxy in this namespace (RBAC)"
    else:
        hint = "the service has no ready endpoint or the API server could not reach it"
    return RepairRequestFailed(
        f"{what}: the Kubernetes API service proxy answered HTTP {answer.status}: {message} ({hint})",
        retryable=answer.status >= 500,
    )
