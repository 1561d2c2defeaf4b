"""A pod's subresources: logs (follow, sinceTime, sinceSeconds, timestamps, tailLines, limitBytes), exec over
WebSocket (see :mod:`kubecost_sim.execstream`) and ephemeral containers."""

from __future__ import annotations

import time

from aiohttp import web

from .. import apimachinery as api
from ..cluster import (
    Pod,
)
from ..execstream import PROTOCOLS, ExecSession
from .common import (
    flag,
    format_timestamp,
    parse_time,
    reply,
)


class PodRoutes:
    """The pod subresource endpoints of ``KubeApi``."""

    def _container(self, pod: Pod, name: str | None):
        regular = [c.name for c in pod.containers.values() if not c.ephemeral]
        if not name:
            if len(regular) == 1:
                return pod.containers[regular[0]]
            ephemeral = [c.name for c in pod.containers.values() if c.ephemeral]
            message = (
                f"a container name must be specified for pod {pod.name}, choose one of: [{' '.join(regular)}]"
            )
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
        if flag(request, "previous"):
            raise api.bad_request(
                f'previous terminated container "{container.name}" in pod "{pod.name}" not found'
            )
        since_ns = None
        if "sinceSeconds" in query and "sinceTime" in query:
            raise api.invalid(
                "PodLogOptions",
                "",
                [
                    (
                        "FieldValueForbidden",
                        "",
                        "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                    )
                ],
            )
        if "sinceSeconds" in query:
            try:
                seconds = int(query["sinceSeconds"])
            except ValueError:
                raise api.bad_request(
                    f'strconv.ParseInt: parsing "{query["sinceSeconds"]}": invalid syntax'
                ) from None
            if seconds < 1:
                raise api.invalid(
                    "PodLogOptions",
                    "",
                    [("FieldValueInvalid", "sinceSeconds", "Invalid value: must be greater than 0")],
                )
            since_ns = time.time_ns() - seconds * 1_000_000_000
        elif "sinceTime" in query:
            since_ns = int(parse_time(query["sinceTime"]) * 1_000_000_000)
        timestamps = flag(request, "timestamps")
        tail_lines = int(query["tailLines"]) if query.get("tailLines", "").lstrip("-").isdigit() else None
        limit = int(query["limitBytes"]) if query.get("limitBytes", "").isdigit() else None

        def render(entries) -> bytes:
            lines = []
            for received, line in entries:
                if since_ns is not None and received < since_ns:
                    continue
                lines.append(f"{format_timestamp(received)} {line}\n" if timestamps else f"{line}\n")
            return "".join(lines).encode("utf-8", "surrogateescape")

        entries = list(container.log)
        start = len(entries)
        if tail_lines is not None and tail_lines >= 0:
            entries = entries[len(entries) - tail_lines :] if tail_lines else []
        body = render(entries)
        if not flag(request, "follow"):
            return web.Response(
                body=body[:limit] if limit is not None else body, content_type="text/plain", charset="utf-8"
            )
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while True:
                if limit is not None:
                    body = body[: max(0, limit - sent)]
                if body:
                    await response.write(body)
                    sent += len(body)
                if (
                    (limit is not None and sent >= limit)
                    or self.cluster.pods.get(pod.name) is not pod
                    or self._closing
                ):
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
        streams = {name: flag(request, name) for name in ("stdin", "stdout", "stderr", "tty")}
        if not (streams["stdin"] or streams["stdout"] or streams["stderr"]):
            raise api.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if not command:
            raise api.bad_request("you must specify at least one command for the container")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # SPDY (kubectl's fallback) is not simulated: kubectl only falls back if WebSocket failed.
            raise api.bad_request(
                "Upgrade request required (kubecost_sim speaks the WebSocket exec protocol)"
            )
        offered = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        protocol = next((p for p in offered if p in PROTOCOLS), None)
        if protocol is None:
            raise api.bad_request(
                f"unable to upgrade: requested protocols {offered} not supported; "
                f"supported: {list(PROTOCOLS)}"
            )
        ws = web.WebSocketResponse(
            protocols=(protocol,), max_msg_size=16 << 20, compress=False, heartbeat=None
        )
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
        return reply(pod.to_json())

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
                causes.append(
                    ("FieldValueNotFound", f"{field}.targetContainerName", f'Not found: "{target}"')
                )
            if spec.get("ports"):
                causes.append(
                    (
                        "FieldValueForbidden",
                        f"{field}.ports",
                        "Forbidden: cannot be set for an Ephemeral Container",
                    )
                )
        by_name: dict = {}
        for spec in wanted:
            by_name.setdefault(spec.get("name"), spec)  # a duplicate is reported above, not as a change
        for old in existing:
            if old["name"] not in by_name:
                causes.append(
                    (
                        "FieldValueForbidden",
                        "spec.ephemeralContainers",
                        f'Forbidden: existing ephemeral containers "{old["name"]}" may not be removed',
                    )
                )
            elif by_name[old["name"]] != old:
                causes.append(
                    (
                        "FieldValueForbidden",
                        "spec.ephemeralContainers",
                        f'Forbidden: existing ephemeral containers "{old["name"]}" may not be changed',
                    )
                )
        if causes:
            raise api.invalid("Pod", pod.name, causes)
