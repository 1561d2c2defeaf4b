"""The Kubernetes API of the simulated cluster, on the real wire protocol.

HTTP JSON with bearer-token auth, Status errors, discovery, Table output for ``kubectl get``,
list/get/watch of namespaces, pods, deployments, replicasets and services, pod logs (follow,
sinceTime, sinceSeconds, timestamps, tailLines, limitBytes), exec over WebSocket (see
:mod:`kubecost_sim.execstream`), ephemeral containers, deployment PATCH (rollout restart) and
scale, pod deletion, and the service/pod proxy to the cost-model and Prometheus ports.
No OpenAPI documents: kubectl works without them for the commands used here.

Admin endpoints for tests live under ``/_sim/`` and need no token.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from yarl import URL

from . import apimachinery as api
from .apimachinery import ApiError
from .cluster import (
    COST_MODEL_CONTAINER,
    COST_MODEL_DEPLOYMENT,
    NAMESPACE,
    NAMESPACES,
    Cluster,
    Pod,
    object_metadata,
    rfc3339,
)
from .execstream import PROTOCOLS, ExecSession
from .faults import Faults
from .rbac import RoleAuthorizer
from .requestlog import RequestLog

log = logging.getLogger(__name__)

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
           "gitTreeState": "clean", "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.6",
           "compiler": "gc", "platform": "linux/amd64"}
_ALL_VERBS = ["get", "list", "watch"]
CORE_RESOURCES = [
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "verbs": _ALL_VERBS, "shortNames": ["ns"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["delete", *_ALL_VERBS], "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
     "verbs": ["create", "get"]},
    {"name": "pods/ephemeralcontainers", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get", "patch"]},
    {"name": "pods/proxy", "singularName": "", "namespaced": True, "kind": "PodProxyOptions",
     "verbs": ["create", "delete", "get", "patch", "update"]},
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
     "verbs": _ALL_VERBS, "shortNames": ["svc"], "categories": ["all"]},
    {"name": "services/proxy", "singularName": "", "namespaced": True, "kind": "ServiceProxyOptions",
     "verbs": ["create", "delete", "get", "patch", "update"]},
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
     "verbs": ["list"], "shortNames": ["ev"]},
]
APPS_RESOURCES = [
    {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
     "verbs": ["get", "list", "patch", "watch"], "shortNames": ["deploy"], "categories": ["all"]},
    {"name": "deployments/scale", "singularName": "", "namespaced": True, "group": "autoscaling",
     "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
    {"name": "deployments/status", "singularName": "", "namespaced": True, "kind": "Deployment",
     "verbs": ["get"]},
    {"name": "replicasets", "singularName": "replicaset", "namespaced": True, "kind": "ReplicaSet",
     "verbs": _ALL_VERBS, "shortNames": ["rs"], "categories": ["all"]},
]
_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                "transfer-encoding", "upgrade", "host", "authorization", "content-length"}
_TRUE = ("true", "1")
# ports of the pods' processes -> which simulated app serves them
_POD_PORT_APPS = {9003: "model", 9090: "frontend"}


def _json(document: dict, status: int = 200) -> web.Response:
    return web.json_response(document, status=status)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in _TRUE


def _parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise api.bad_request(f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse "{text}" '
                              f'as "2006"') from None


def _timestamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class KubeApi:
    def __init__(self, cluster: Cluster, faults: Faults, token: str, upstreams: dict[str, str],
                 request_log: RequestLog, authorizer: RoleAuthorizer | None = None):
        self.cluster = cluster
        self.authorizer = authorizer  # None: the token may do everything
        self.faults = faults
        self.token = token
        self.upstreams = upstreams  # "model", "frontend", "prometheus" -> base URL
        self.request_log = request_log
        self._session: aiohttp.ClientSession | None = None
        self._closing = False  # set at shutdown: watches and log follows end instead of waiting
        self._sessions: dict[str, set[ExecSession]] = {}  # running execs by pod name
        cluster.on_pod_deleted(self._kill_sessions)
        cluster.on_containers_ended(self._kill_container_sessions)
        self._service_apps = {(COST_MODEL_DEPLOYMENT, 9003): "model", (COST_MODEL_DEPLOYMENT, 9090): "frontend",
                              ("kubecost-prometheus-server", 80): "prometheus"}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_requests, self._errors, self._authenticate],
                              client_max_size=64 << 20)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._stop)
        route = app.router.add_route
        route("GET", "/version", self.version)
        route("GET", "/api", self.core_versions)
        route("GET", "/api/v1", self.core_resources)
        route("GET", "/apis", self.groups)
        route("GET", "/apis/apps", self.apps_group)
        route("GET", "/apis/apps/v1", self.apps_resources)
        route("GET", "/api/v1/namespaces", self.list_namespaces)
        route("GET", "/api/v1/namespaces/{ns}", self.get_namespace)
        route("GET", "/api/v1/pods", self.list_pods)
        route("GET", "/api/v1/namespaces/{ns}/pods", self.list_pods)
        route("GET", "/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        route("DELETE", "/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        route("GET", "/api/v1/namespaces/{ns}/pods/{name}/log", self.pod_log)
        route("GET", "/api/v1/namespaces/{ns}/pods/{name}/exec", self.pod_exec)
        route("POST", "/api/v1/namespaces/{ns}/pods/{name}/exec", self.pod_exec)
        route("GET", "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers", self.get_pod)
        route("PATCH", "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers", self.patch_ephemeral)
        route("*", "/api/v1/namespaces/{ns}/pods/{name}/proxy{tail:.*}", self.pod_proxy)
        route("GET", "/api/v1/services", self.list_services)
        route("GET", "/api/v1/namespaces/{ns}/services", self.list_services)
        route("GET", "/api/v1/namespaces/{ns}/services/{name}", self.get_service)
        route("*", "/api/v1/namespaces/{ns}/services/{name}/proxy{tail:.*}", self.service_proxy)
        route("GET", "/api/v1/namespaces/{ns}/events", self.list_events)
        route("GET", "/apis/apps/v1/deployments", self.list_deployments)
        route("GET", "/apis/apps/v1/namespaces/{ns}/deployments", self.list_deployments)
        route("GET", "/apis/apps/v1/namespaces/{ns}/deployments/{name}", self.get_deployment)
        route("GET", "/apis/apps/v1/namespaces/{ns}/deployments/{name}/status", self.get_deployment)
        route("PATCH", "/apis/apps/v1/namespaces/{ns}/deployments/{name}", self.patch_deployment)
        route("GET", "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self.get_scale)
        route("PATCH", "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self.update_scale)
        route("PUT", "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self.update_scale)
        route("GET", "/apis/apps/v1/replicasets", self.list_replicasets)
        route("GET", "/apis/apps/v1/namespaces/{ns}/replicasets", self.list_replicasets)
        route("GET", "/apis/apps/v1/namespaces/{ns}/replicasets/{name}", self.get_replicaset)
        route("GET", "/_sim/faults", self.get_faults)
        route("POST", "/_sim/faults", self.set_faults)
        route("DELETE", "/_sim/faults", self.reset_faults)
        route("POST", "/_sim/restart", self.admin_restart)
        route("POST", "/_sim/end-ephemeral-containers", self.admin_end_ephemeral)
        route("GET", "/_sim/state", self.admin_state)
        route("POST", "/_sim/log", self.admin_log)
        route("GET", "/_sim/rbac", self.admin_rbac)
        return app

    async def _start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=600))

    async def _shutdown(self, app: web.Application) -> None:
        self._closing = True
        self.cluster.wake_waiters()

    async def _stop(self, app: web.Application) -> None:
        await self._session.close()

    # ----------------------------------------------------------------------- middleware

    @web.middleware
    async def _log_requests(self, request: web.Request, handler):
        if not request.path.startswith("/_sim/"):
            query = {key: (values[0] if len(values) == 1 else values)
                     for key in request.query for values in [request.query.getall(key)]}
            self.request_log.record(request.method, request.path, query)
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPNotFound:
            return _json(api.status_body(404, "NotFound", "the server could not find the requested resource",
                                         {}), 404)
        except web.HTTPMethodNotAllowed:
            return _json(api.status_body(405, "MethodNotAllowed",
                                         "the server does not allow this method on the requested resource",
                                         {}), 405)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        if request.path.startswith("/_sim/"):
            return await handler(request)
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {self.token}".encode()):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if self.authorizer is not None:
            self.authorizer.check(request.method, request.path, request.query,
                                  websocket=request.headers.get("Upgrade", "").lower() == "websocket")
        return await handler(request)

    # ------------------------------------------------------------------------ discovery

    async def version(self, request: web.Request) -> web.Response:
        return _json(VERSION)

    async def core_versions(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIVersions", "versions": ["v1"],
                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})

    async def core_resources(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIResourceList", "groupVersion": "v1", "resources": CORE_RESOURCES})

    async def groups(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._apps_group()]})

    async def apps_group(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIGroup", "apiVersion": "v1", **self._apps_group()})

    @staticmethod
    def _apps_group() -> dict:
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {"name": "apps", "versions": [version], "preferredVersion": version}

    async def apps_resources(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                      "resources": APPS_RESOURCES})

    # ----------------------------------------------------------------------- listing

    @staticmethod
    def _selection(request: web.Request, fields: dict) -> Callable[[dict], bool]:
        """Whether an object is in the request's namespace (if any) and matches its selectors."""
        matches_labels = api.label_selector(request.query.get("labelSelector"))
        matches_fields = api.field_selector(request.query.get("fieldSelector"), fields)
        namespace = request.match_info.get("ns")

        def matches(obj: dict) -> bool:
            return ((namespace is None or obj["metadata"].get("namespace", namespace) == namespace)
                    and matches_labels(obj["metadata"].get("labels", {})) and matches_fields(obj))

        return matches

    def _list(self, request: web.Request, kind: str, api_version: str, objects: list[dict],
              fields: dict = api.OBJECT_FIELDS) -> web.StreamResponse:
        selected = list(filter(self._selection(request, fields), objects))
        version = str(self.cluster.resource_version)
        if api.wants_table(request.headers.get("Accept", "")) and kind in api.TABLES:
            return _json(api.table(kind, selected, version, request.query.get("includeObject", "Metadata")))
        for obj in selected:
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return _json({"kind": f"{kind}List", "apiVersion": api_version, "metadata": {"resourceVersion": version},
                      "items": selected})

    def _single(self, request: web.Request, obj: dict) -> web.Response:
        if api.wants_table(request.headers.get("Accept", "")) and obj["kind"] in api.TABLES:
            return _json(api.table(obj["kind"], [obj], obj["metadata"].get("resourceVersion", ""),
                                   request.query.get("includeObject", "Metadata")))
        return _json(obj)

    def _namespace_json(self, name: str) -> dict:
        return {"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                             "resourceVersion": "1", "creationTimestamp": rfc3339(self.cluster.created),
                             "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    async def list_namespaces(self, request: web.Request) -> web.StreamResponse:
        return self._list(request, "Namespace", "v1", [self._namespace_json(n) for n in NAMESPACES])

    async def get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["ns"]
        if name not in NAMESPACES:
            raise api.not_found("namespaces", name)
        return self._single(request, self._namespace_json(name))

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        if _flag(request, "watch"):
            return await self._watch(request, "Pod", lambda: [p.to_json() for p in self.cluster.pods.values()],
                                     api.POD_FIELDS)
        return self._list(request, "Pod", "v1", [pod.to_json() for pod in self.cluster.pods.values()],
                          api.POD_FIELDS)

    async def list_services(self, request: web.Request) -> web.StreamResponse:
        return self._list(request, "Service", "v1", [copy.deepcopy(s) for s in self.cluster.services.values()])

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        return _json({"kind": "EventList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": str(self.cluster.resource_version)}, "items": []})

    async def list_deployments(self, request: web.Request) -> web.StreamResponse:
        current = lambda: [d.to_json() for d in self.cluster.deployments.values()]  # noqa: E731
        if _flag(request, "watch"):
            return await self._watch(request, "Deployment", current, api.OBJECT_FIELDS)
        return self._list(request, "Deployment", "apps/v1", current())

    async def list_replicasets(self, request: web.Request) -> web.StreamResponse:
        current = lambda: [r.to_json() for r in self.cluster.replicasets.values()]  # noqa: E731
        if _flag(request, "watch"):
            return await self._watch(request, "ReplicaSet", current, api.OBJECT_FIELDS)
        return self._list(request, "ReplicaSet", "apps/v1", current())

    async def _watch(self, request: web.Request, kind: str, current, fields: dict) -> web.StreamResponse:
        """Watch events as JSON lines: the current objects (or history after ``resourceVersion``),
        then changes, until ``timeoutSeconds``. Objects that stop matching the selectors are
        reported DELETED, as the real API does."""
        matches = self._selection(request, fields)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + float(request.query.get("timeoutSeconds") or 1800)
        requested = request.query.get("resourceVersion", "")
        visible: set[str] = set()

        async def send(event_type: str, obj: dict) -> None:
            await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

        try:
            if requested in ("", "0"):
                last_seen = self.cluster.resource_version
                for obj in current():
                    if matches(obj):
                        visible.add(obj["metadata"]["name"])
                        await send("ADDED", obj)
            else:
                last_seen = int(requested) if requested.isdigit() else 0
                oldest = self.cluster.events[0].resource_version if self.cluster.events else last_seen
                if last_seen < oldest - 1:
                    await send("ERROR", api.status_body(
                        410, "Expired", f"too old resource version: {last_seen} ({oldest - 1})"))
                    await response.write_eof()
                    return response
                visible = {obj["metadata"]["name"] for obj in current() if matches(obj)}
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0 and not self._closing:
                for event in [e for e in self.cluster.events if e.resource_version > last_seen]:
                    last_seen = event.resource_version
                    if event.kind != kind:
                        continue
                    name = event.object["metadata"]["name"]
                    if event.type != "DELETED" and matches(event.object):
                        await send("MODIFIED" if name in visible and event.type != "ADDED" else "ADDED",
                                   event.object)
                        visible.add(name)
                    elif name in visible:
                        visible.discard(name)
                        await send("DELETED", event.object)
                await self.cluster.wait_for_change(remaining)
            await response.write_eof()
        except ConnectionError:
            pass  # the watcher went away
        return response

    # -------------------------------------------------------------------------- pods

    @staticmethod
    def _named(request: web.Request, objects: dict, resource: str, name: str, group: str = ""):
        """``objects[name]`` if the request is for the kubecost namespace; else the API's 404."""
        found = objects.get(name) if request.match_info["ns"] == NAMESPACE else None
        if found is None:
            raise api.not_found(resource, name, group=group)
        return found

    def _pod(self, request: web.Request, name: str | None = None) -> Pod:
        return self._named(request, self.cluster.pods, "pods", name or request.match_info["name"])

    async def get_pod(self, request: web.Request) -> web.Response:
        return self._single(request, self._pod(request).to_json())

    async def delete_pod(self, request: web.Request) -> web.Response:
        pod = self._pod(request)
        return _json(self.cluster.delete_pod(pod.name))

    def _container(self, pod: Pod, name: str | None):
        regular = [c.name for c in pod.containers.values() if not c.ephemeral]
        if not name:
            if len(regular) == 1:
                return pod.containers[regular[0]]
            ephemeral = [c.name for c in pod.containers.values() if c.ephemeral]
            message = f"a container name must be specified for pod {pod.name}, choose one of: [{' '.join(regular)}]"
            if ephemeral:
                message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
            raise api.bad_request(message)
        container = pod.containers.get(name)
        if container is None:
            raise api.bad_request(f"container {name} is not valid for pod {pod.name}")
        return container

    def _running_container(self, pod: Pod, name: str | None):
        """An exec target: a stopped (ephemeral) container cannot be exec'd into."""
        container = self._container(pod, name)
        if container.ended() is not None:
            raise api.bad_request(f'unable to upgrade connection: container not found ("{container.name}")')
        return container

    async def pod_log(self, request: web.Request) -> web.StreamResponse:
        pod = self._pod(request)
        container = self._container(pod, request.query.get("container"))
        query = request.query
        if _flag(request, "previous"):
            raise api.bad_request(f'previous terminated container "{container.name}" in pod "{pod.name}" not found')
        since_ns = None
        if "sinceSeconds" in query and "sinceTime" in query:
            raise api.invalid("PodLogOptions", "", [("FieldValueForbidden", "",
                                                     "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")])
        if "sinceSeconds" in query:
            try:
                seconds = int(query["sinceSeconds"])
            except ValueError:
                raise api.bad_request(f'strconv.ParseInt: parsing "{query["sinceSeconds"]}": invalid syntax') from None
            if seconds < 1:
                raise api.invalid("PodLogOptions", "", [("FieldValueInvalid", "sinceSeconds",
                                                         "Invalid value: must be greater than 0")])
            since_ns = time.time_ns() - seconds * 1_000_000_000
        elif "sinceTime" in query:
            since_ns = int(_parse_time(query["sinceTime"]) * 1_000_000_000)
        timestamps = _flag(request, "timestamps")
        tail_lines = int(query["tailLines"]) if query.get("tailLines", "").lstrip("-").isdigit() else None
        limit = int(query["limitBytes"]) if query.get("limitBytes", "").isdigit() else None

        def render(entries) -> bytes:
            lines = []
            for received, line in entries:
                if since_ns is not None and received < since_ns:
                    continue
                lines.append(f"{_timestamp(received)} {line}\n" if timestamps else f"{line}\n")
            return "".join(lines).encode("utf-8", "surrogateescape")

        entries = list(container.log)
        start = len(entries)
        if tail_lines is not None and tail_lines >= 0:
            entries = entries[len(entries) - tail_lines:] if tail_lines else []
        body = render(entries)
        if not _flag(request, "follow"):
            return web.Response(body=body[:limit] if limit is not None else body,
                                content_type="text/plain", charset="utf-8")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while True:
                if limit is not None:
                    body = body[:max(0, limit - sent)]
                if body:
                    await response.write(body)
                    sent += len(body)
                if (limit is not None and sent >= limit) or self.cluster.pods.get(pod.name) is not pod \
                        or self._closing:
                    break  # the container is gone: kubectl logs -f ends, as with a real restart
                await self.cluster.wait_for_change(None)
                body = render(container.log[start:])
                start = len(container.log)
            await response.write_eof()
        except ConnectionError:
            pass
        return response

    async def pod_exec(self, request: web.Request) -> web.StreamResponse:
        pod = self._pod(request)
        container = self._running_container(pod, request.query.get("container"))
        command = request.query.getall("command", [])
        streams = {name: _flag(request, name) for name in ("stdin", "stdout", "stderr", "tty")}
        if not (streams["stdin"] or streams["stdout"] or streams["stderr"]):
            raise api.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if not command:
            raise api.bad_request("you must specify at least one command for the container")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # SPDY (kubectl's fallback) is not simulated: kubectl only falls back if WebSocket failed.
            raise api.bad_request("Upgrade request required (kubecost_sim speaks the WebSocket exec protocol)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        protocol = next((p for p in offered if p in PROTOCOLS), None)
        if protocol is None:
            raise api.bad_request(f"unable to upgrade: requested protocols {offered} not supported; "
                                  f"supported: {list(PROTOCOLS)}")
        ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=16 << 20, compress=False, heartbeat=None)
        session = ExecSession(request, ws, command, container, faults=self.faults, **streams)
        running = self._sessions.setdefault(pod.name, set())
        running.add(session)  # before the handshake completes: a restart right after it kills the exec
        try:
            await ws.prepare(request)
            await session.run()
        finally:
            running.discard(session)
        return ws

    def _kill_container_sessions(self, pod: Pod, containers: list[str]) -> None:
        for session in list(self._sessions.get(pod.name, set())):
            if session.container.name in containers:
                session.kill()

    def _kill_sessions(self, pod: Pod) -> None:
        for session in self._sessions.pop(pod.name, set()):
            session.kill()

    async def patch_ephemeral(self, request: web.Request) -> web.Response:
        pod = self._pod(request)
        current = pod.to_json()
        patched = api.apply_patch(request.content_type, current, await self._body(request))
        existing = current["spec"].get("ephemeralContainers", [])
        wanted = (patched.get("spec") or {}).get("ephemeralContainers") or []
        self._validate_ephemeral(pod, existing, wanted)
        known = {c["name"] for c in existing}
        for spec in wanted:
            if spec["name"] not in known:
                self.cluster.add_ephemeral_container(pod, spec)
        return _json(pod.to_json())

    @staticmethod
    def _validate_ephemeral(pod: Pod, existing: list[dict], wanted: list[dict]) -> None:
        causes = []
        regular = [c.name for c in pod.containers.values() if not c.ephemeral]
        seen = set(regular)
        for index, spec in enumerate(wanted):
            field = f"spec.ephemeralContainers[{index}]"
            name = spec.get("name")
            if not name:
                causes.append(("FieldValueRequired", f"{field}.name", "Required value"))
                continue
            if name in seen:
                causes.append(("FieldValueDuplicate", f"{field}.name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not spec.get("image"):
                causes.append(("FieldValueRequired", f"{field}.image", "Required value"))
            target = spec.get("targetContainerName")
            if target and target not in regular:
                causes.append(("FieldValueNotFound", f"{field}.targetContainerName", f'Not found: "{target}"'))
            if spec.get("ports"):
                causes.append(("FieldValueForbidden", f"{field}.ports",
                               "Forbidden: cannot be set for an Ephemeral Container"))
        by_name: dict = {}
        for spec in wanted:
            by_name.setdefault(spec.get("name"), spec)  # a duplicate is reported above, not as a change
        for old in existing:
            if old["name"] not in by_name:
                causes.append(("FieldValueForbidden", "spec.ephemeralContainers",
                               f'Forbidden: existing ephemeral containers "{old["name"]}" may not be removed'))
            elif by_name[old["name"]] != old:
                causes.append(("FieldValueForbidden", "spec.ephemeralContainers",
                               f'Forbidden: existing ephemeral containers "{old["name"]}" may not be changed'))
        if causes:
            raise api.invalid("Pod", pod.name, causes)

    @staticmethod
    async def _body(request: web.Request):
        try:
            return json.loads(await request.read() or b"null")
        except ValueError as error:
            raise api.bad_request(f"the body of the request could not be decoded as JSON: {error}") from None

    # --------------------------------------------------------------------- apps/v1

    def _deployment(self, request: web.Request):
        return self._named(request, self.cluster.deployments, "deployments", request.match_info["name"], "apps")

    async def get_deployment(self, request: web.Request) -> web.Response:
        return self._single(request, self._deployment(request).to_json())

    async def patch_deployment(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        current = deployment.to_json()
        patched = api.apply_patch(request.content_type, current, await self._body(request))
        spec = patched.get("spec") or {}
        replicas = self._checked_replicas(deployment.name, spec.get("replicas", deployment.replicas))
        if spec.get("selector") != current["spec"]["selector"]:
            raise api.invalid("Deployment", deployment.name, [(
                "FieldValueInvalid", "spec.selector", "Invalid value: field is immutable")], group="apps")
        self.cluster.update_deployment(deployment, template=spec.get("template"), replicas=replicas)
        return _json(deployment.to_json())

    @staticmethod
    def _checked_replicas(name: str, replicas) -> int:
        if replicas not in (0, 1):
            raise api.invalid("Deployment", name, [(
                "FieldValueInvalid", "spec.replicas",
                f"Invalid value: {replicas}: kubecost_sim runs 0 or 1 replica")], group="apps")
        return replicas

    def _scale_json(self, deployment) -> dict:
        selector = ",".join(f"{k}={v}" for k, v in deployment.selector.items())
        ready = deployment.replicas if deployment.current else 0
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": object_metadata(deployment),
                "spec": {"replicas": deployment.replicas}, "status": {"replicas": ready, "selector": selector}}

    async def get_scale(self, request: web.Request) -> web.Response:
        return _json(self._scale_json(self._deployment(request)))

    async def update_scale(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        body = await self._body(request)
        if request.method == "PUT":
            scale = body
        else:
            scale = api.apply_patch(request.content_type, self._scale_json(deployment), body)
        replicas = self._checked_replicas(deployment.name, (scale.get("spec") or {}).get("replicas", 0))
        self.cluster.update_deployment(deployment, replicas=replicas)
        return _json(self._scale_json(deployment))

    async def get_replicaset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        replicaset = self._named(request, self.cluster.replicasets, "replicasets", name, "apps")
        return self._single(request, replicaset.to_json())

    # ---------------------------------------------------------------------- services

    def _service(self, request: web.Request, name: str) -> dict:
        return self._named(request, self.cluster.services, "services", name)

    async def get_service(self, request: web.Request) -> web.Response:
        return self._single(request, copy.deepcopy(self._service(request, request.match_info["name"])))

    async def service_proxy(self, request: web.Request) -> web.StreamResponse:
        """``services/[scheme:]name[:port]/proxy/<path>`` -> the app behind that service port."""
        parts = request.match_info["name"].split(":")
        if len(parts) == 3:
            parts = parts[1:]  # drop the scheme ("http:name:port")
        name, port = parts[0], parts[1] if len(parts) > 1 else ""
        service = self._service(request, name)
        ports = service["spec"]["ports"]
        chosen = next((p for p in ports if port in (str(p["port"]), p.get("name", ""))), None) if port else ports[0]
        if chosen is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{request.match_info["name"]}"')
        if name == COST_MODEL_DEPLOYMENT and self.cluster.cost_model_pod() is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        app = self._service_apps[(name, chosen["port"])]
        return await self._forward(request, self.upstreams[app], service["spec"]["clusterIP"], chosen["port"])

    async def pod_proxy(self, request: web.Request) -> web.StreamResponse:
        """``pods/name[:port]/proxy/<path>`` -> the cost-model (9003, 9090) or frontend (9090) app."""
        name, _, port = request.match_info["name"].partition(":")
        pod = self._pod(request, name)
        declared = [p for c in pod.containers.values() for p in c.spec.get("ports", [])]
        chosen = next((p["containerPort"] for p in declared if port in (str(p["containerPort"]), p.get("name"))),
                      int(port) if port.isdigit() else None) if port else None
        app = _POD_PORT_APPS.get(chosen)
        if app is None or (app == "model" and pod.cost_model is None):
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {pod.pod_ip}:"
                                                      f"{chosen or 80}: connect: connection refused")
        return await self._forward(request, self.upstreams[app], pod.pod_ip, chosen)

    async def _forward(self, request: web.Request, base: str, shown_host: str, shown_port: int) -> web.Response:
        raw = request.rel_url.raw_path
        tail = raw[raw.index("/proxy") + len("/proxy"):] or "/"
        target = base.rstrip("/") + tail
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        try:
            async with self._session.request(request.method, URL(target, encoded=True), headers=headers,
                                             data=body or None, allow_redirects=False) as upstream:
                payload = await upstream.read()
                reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
                return web.Response(status=upstream.status, body=payload, headers=reply_headers)
        except aiohttp.ClientConnectionError:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {shown_host}:"
                                                      f"{shown_port}: connect: connection refused") from None

    # ------------------------------------------------------------------------ admin

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(await request.json())
        except (ValueError, TypeError, AttributeError) as error:
            return _json({"error": str(error)}, 400)
        return _json(self.faults.as_dict())

    async def reset_faults(self, request: web.Request) -> web.Response:
        self.faults.reset()
        return _json(self.faults.as_dict())

    async def admin_restart(self, request: web.Request) -> web.Response:
        old = self.cluster.cost_model_pod()
        new = self.cluster.rollout_restart()
        return _json({"old_pod": old.name if old else None, "pod": new})

    async def admin_end_ephemeral(self, request: web.Request) -> web.Response:
        """``{"restart_cost_model": bool}``: end the debug containers (their sleep ran out), or restart
        cost-model in place, which ends them too."""
        body = await request.json() if request.can_read_body else {}
        ended = self.cluster.end_ephemeral_containers(bool(body.get("restart_cost_model")))
        return _json({"ended": ended})

    async def admin_state(self, request: web.Request) -> web.Response:
        return _json(self.cluster.state())

    async def admin_rbac(self, request: web.Request) -> web.Response:
        """The Role in force and what it granted, what was used, what was denied (``rbac.report()``)."""
        return _json(self.authorizer.report() if self.authorizer is not None else {"role": None})

    async def admin_log(self, request: web.Request) -> web.Response:
        """Append lines to the cost-model pod's log: ``{"lines": [...], "container": "cost-model"}``."""
        body = await request.json()
        lines = body.get("lines") or [body.get("line", "")]
        for line in lines:
            self.cluster.append_log(body.get("container", COST_MODEL_CONTAINER), line)
        return _json({"appended": len(lines)})

