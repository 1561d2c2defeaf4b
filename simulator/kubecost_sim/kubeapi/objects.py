"""Discovery, and get/list/watch of namespaces, pods, services, events, deployments (with scale and
rollout PATCH) and replicasets, as ``kubectl get`` and the clients read them."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable

from aiohttp import web

from .. import apimachinery as api
from ..cluster import (
    NAMESPACE,
    NAMESPACES,
    Pod,
    object_metadata,
    rfc3339,
)
from .common import (
    APPS_RESOURCES,
    CORE_RESOURCES,
    VERSION,
    flag,
    reply,
)


class ObjectRoutes:
    """The object endpoints of ``KubeApi``."""

    # ------------------------------------------------------------------------ discovery

    async def version(self, request: web.Request) -> web.Response:
        return reply(VERSION)

    async def core_versions(self, request: web.Request) -> web.Response:
        return reply(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
            }
        )

    async def core_resources(self, request: web.Request) -> web.Response:
        return reply({"kind": "APIResourceList", "groupVersion": "v1", "resources": CORE_RESOURCES})

    async def groups(self, request: web.Request) -> web.Response:
        return reply({"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._apps_group()]})

    async def apps_group(self, request: web.Request) -> web.Response:
        return reply({"kind": "APIGroup", "apiVersion": "v1", **self._apps_group()})

    @staticmethod
    def _apps_group() -> dict:
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {"name": "apps", "versions": [version], "preferredVersion": version}

    async def apps_resources(self, request: web.Request) -> web.Response:
        return reply(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "apps/v1",
                "resources": APPS_RESOURCES,
            }
        )

    # ----------------------------------------------------------------------- listing

    @staticmethod
    def _selection(request: web.Request, fields: dict) -> Callable[[dict], bool]:
        """Whether an object is in the request's namespace (if any) and matches its selectors."""
        matches_labels = api.label_selector(request.query.get("labelSelector"))
        matches_fields = api.field_selector(request.query.get("fieldSelector"), fields)
        namespace = request.match_info.get("ns")

        def matches(obj: dict) -> bool:
            return (
                (namespace is None or obj["metadata"].get("namespace", namespace) == namespace)
                and matches_labels(obj["metadata"].get("labels", {}))
                and matches_fields(obj)
            )

        return matches

    def _list(
        self,
        request: web.Request,
        kind: str,
        api_version: str,
        objects: list[dict],
        fields: dict = api.OBJECT_FIELDS,
    ) -> web.StreamResponse:
        selected = list(filter(self._selection(request, fields), objects))
        version = str(self.cluster.resource_version)
        if api.wants_table(request.headers.get("Accept", "")) and kind in api.TABLES:
            return reply(api.table(kind, selected, version, request.query.get("includeObject", "Metadata")))
        for obj in selected:
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return reply(
            {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": version},
                "items": selected,
            }
        )

    def _single(self, request: web.Request, obj: dict) -> web.Response:
        if api.wants_table(request.headers.get("Accept", "")) and obj["kind"] in api.TABLES:
            return reply(
                api.table(
                    obj["kind"],
                    [obj],
                    obj["metadata"].get("resourceVersion", ""),
                    request.query.get("includeObject", "Metadata"),
                )
            )
        return reply(obj)

    def _namespace_json(self, name: str) -> dict:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                "resourceVersion": "1",
                "creationTimestamp": rfc3339(self.cluster.created),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    async def list_namespaces(self, request: web.Request) -> web.StreamResponse:
        return self._list(request, "Namespace", "v1", [self._namespace_json(n) for n in NAMESPACES])

    async def get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["ns"]
        if name not in NAMESPACES:
            raise api.not_found("namespaces", name)
        return self._single(request, self._namespace_json(name))

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        if flag(request, "watch"):
            return await self._watch(
                request, "Pod", lambda: [p.to_json() for p in self.cluster.pods.values()], api.POD_FIELDS
            )
        return self._list(
            request, "Pod", "v1", [pod.to_json() for pod in self.cluster.pods.values()], api.POD_FIELDS
        )

    async def list_services(self, request: web.Request) -> web.StreamResponse:
        return self._list(
            request, "Service", "v1", [copy.deepcopy(s) for s in self.cluster.services.values()]
        )

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        return reply(
            {
                "kind": "EventList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.cluster.resource_version)},
                "items": [],
            }
        )

    async def list_deployments(self, request: web.Request) -> web.StreamResponse:
        current = lambda: [d.to_json() for d in self.cluster.deployments.values()]  # noqa: E731
        if flag(request, "watch"):
            return await self._watch(request, "Deployment", current, api.OBJECT_FIELDS)
        return self._list(request, "Deployment", "apps/v1", current())

    async def list_replicasets(self, request: web.Request) -> web.StreamResponse:
        current = lambda: [r.to_json() for r in self.cluster.replicasets.values()]  # noqa: E731
        if flag(request, "watch"):
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
                    await send(
                        "ERROR",
                        api.status_body(
                            410, "Expired", f"too old resource version: {last_seen} ({oldest - 1})"
                        ),
                    )
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
                        await send(
                            "MODIFIED" if name in visible and event.type != "ADDED" else "ADDED", event.object
                        )
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
        return reply(self.cluster.delete_pod(pod.name))

    @staticmethod
    async def _body(request: web.Request):
        try:
            return json.loads(await request.read() or b"null")
        except ValueError as error:
            raise api.bad_request(f"the body of the request could not be decoded as JSON: {error}") from None

    # --------------------------------------------------------------------- apps/v1

    def _deployment(self, request: web.Request):
        return self._named(
            request, self.cluster.deployments, "deployments", request.match_info["name"], "apps"
        )

    async def get_deployment(self, request: web.Request) -> web.Response:
        return self._single(request, self._deployment(request).to_json())

    async def patch_deployment(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        current = deployment.to_json()
        patched = api.apply_patch(request.content_type, current, await self._body(request))
        spec = patched.get("spec") or {}
        replicas = self._checked_replicas(deployment.name, spec.get("replicas", deployment.replicas))
        if spec.get("selector") != current["spec"]["selector"]:
            raise api.invalid(
                "Deployment",
                deployment.name,
                [("FieldValueInvalid", "spec.selector", "Invalid value: field is immutable")],
                group="apps",
            )
        self.cluster.update_deployment(deployment, template=spec.get("template"), replicas=replicas)
        return reply(deployment.to_json())

    @staticmethod
    def _checked_replicas(name: str, replicas) -> int:
        if replicas not in (0, 1):
            raise api.invalid(
                "Deployment",
                name,
                [
                    (
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {replicas}: kubecost_sim runs 0 or 1 replica",
                    )
                ],
                group="apps",
            )
        return replicas

    def _scale_json(self, deployment) -> dict:
        selector = ",".join(f"{k}={v}" for k, v in deployment.selector.items())
        ready = deployment.replicas if deployment.current else 0
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": object_metadata(deployment),
            "spec": {"replicas": deployment.replicas},
            "status": {"replicas": ready, "selector": selector},
        }

    async def get_scale(self, request: web.Request) -> web.Response:
        return reply(self._scale_json(self._deployment(request)))

    async def update_scale(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        body = await self._body(request)
        if request.method == "PUT":
            scale = body
        else:
            scale = api.apply_patch(request.content_type, self._scale_json(deployment), body)
        replicas = self._checked_replicas(deployment.name, (scale.get("spec") or {}).get("replicas", 0))
        self.cluster.update_deployment(deployment, replicas=replicas)
        return reply(self._scale_json(deployment))

    async def get_replicaset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        replicaset = self._named(request, self.cluster.replicasets, "replicasets", name, "apps")
        return self._single(request, replicaset.to_json())

    # ---------------------------------------------------------------------- services

    def _service(self, request: web.Request, name: str) -> dict:
        return self._named(request, self.cluster.services, "services", name)

    async def get_service(self, request: web.Request) -> web.Response:
        return self._single(request, copy.deepcopy(self._service(request, request.match_info["name"])))
