"""``KubeApi``: the routes, bearer-token authentication, Status errors and the request log, over the handler
groups (``objects``, ``pods``, ``proxy``, ``admin``)."""

from __future__ import annotations

import hmac

import aiohttp
from aiohttp import web

from .. import apimachinery as api
from ..apimachinery import ApiError
from ..cluster import (
    COST_MODEL_DEPLOYMENT,
    Cluster,
)
from ..execstream import ExecSession
from ..faults import Faults
from ..rbac import RoleAuthorizer
from ..requestlog import RequestLog
from .admin import AdminRoutes
from .common import (
    reply,
)
from .objects import ObjectRoutes
from .pods import PodRoutes
from .proxy import ProxyRoutes


class KubeApi(ObjectRoutes, PodRoutes, ProxyRoutes, AdminRoutes):
    def __init__(
        self,
        cluster: Cluster,
        faults: Faults,
        token: str,
        upstreams: dict[str, str],
        request_log: RequestLog,
        authorizer: RoleAuthorizer | None = None,
    ):
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
        self._service_apps = {
            (COST_MODEL_DEPLOYMENT, 9003): "model",
            (COST_MODEL_DEPLOYMENT, 9090): "frontend",
            ("kubecost-prometheus-server", 80): "prometheus",
        }

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._log_requests, self._errors, self._authenticate], client_max_size=64 << 20
        )
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
            query = {
                key: (values[0] if len(values) == 1 else values)
                for key in request.query
                for values in [request.query.getall(key)]
            }
            self.request_log.record(request.method, request.path, query)
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPNotFound:
            return reply(
                api.status_body(404, "NotFound", "the server could not find the requested resource", {}), 404
            )
        except web.HTTPMethodNotAllowed:
            return reply(
                api.status_body(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {},
                ),
                405,
            )

    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        if request.path.startswith("/_sim/"):
            return await handler(request)
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {self.token}".encode()):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if self.authorizer is not None:
            self.authorizer.check(
                request.method,
                request.path,
                request.query,
                websocket=request.headers.get("Upgrade", "").lower() == "websocket",
            )
        return await handler(request)
