"""The service and pod proxy to the cost-model, frontend and Prometheus ports."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

from ..apimachinery import ApiError
from ..cluster import (
    COST_MODEL_DEPLOYMENT,
)
from .common import (
    HOP_HEADERS,
    POD_PORT_APPS,
)


class ProxyRoutes:
    """The proxy endpoints of ``KubeApi``."""

    async def service_proxy(self, request: web.Request) -> web.StreamResponse:
        """``services/[scheme:]name[:port]/proxy/<path>`` -> the app behind that service port."""
        parts = request.match_info["name"].split(":")
        if len(parts) == 3:
            parts = parts[1:]  # drop the scheme ("http:name:port")
        name, port = parts[0], parts[1] if len(parts) > 1 else ""
        service = self._service(request, name)
        ports = service["spec"]["ports"]
        chosen = (
            next((p for p in ports if port in (str(p["port"]), p.get("name", ""))), None)
            if port
            else ports[0]
        )
        if chosen is None:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f'no endpoints available for service "{request.match_info["name"]}"',
            )
        if name == COST_MODEL_DEPLOYMENT and self.cluster.cost_model_pod() is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        app = self._service_apps[(name, chosen["port"])]
        return await self._forward(request, self.upstreams[app], service["spec"]["clusterIP"], chosen["port"])

    async def pod_proxy(self, request: web.Request) -> web.StreamResponse:
        """``pods/name[:port]/proxy/<path>`` -> the cost-model (9003, 9090) or frontend (9090) app."""
        name, _, port = request.match_info["name"].partition(":")
        pod = self._pod(request, name)
        declared = [p for c in pod.containers.values() for p in c.spec.get("ports", [])]
        chosen = (
            next(
                (p["containerPort"] for p in declared if port in (str(p["containerPort"]), p.get("name"))),
                int(port) if port.isdigit() else None,
            )
            if port
            else None
        )
        app = POD_PORT_APPS.get(chosen)
        if app is None or (app == "model" and pod.cost_model is None):
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {pod.pod_ip}:"
                f"{chosen or 80}: connect: connection refused",
            )
        return await self._forward(request, self.upstreams[app], pod.pod_ip, chosen)

    async def _forward(
        self, request: web.Request, base: str, shown_host: str, shown_port: int
    ) -> web.Response:
        raw = request.rel_url.raw_path
        tail = raw[raw.index("/proxy") + len("/proxy") :] or "/"
        target = base.rstrip("/") + tail
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        try:
            async with self._session.request(
                request.method,
                URL(target, encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=upstream.status, body=payload, headers=reply_headers)
        except aiohttp.ClientConnectionError:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {shown_host}:"
                f"{shown_port}: connect: connection refused",
            ) from None
