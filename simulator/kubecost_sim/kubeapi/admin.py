"""The test-only admin endpoints under ``/_sim/`` (faults, restarts, ephemeral containers, state, RBAC,
the request log); they need no token."""

from __future__ import annotations

from aiohttp import web

from ..cluster import (
    COST_MODEL_CONTAINER,
)
from .common import (
    reply,
)


class AdminRoutes:
    """The ``/_sim/`` endpoints of ``KubeApi``."""

    # ------------------------------------------------------------------------ admin

    async def get_faults(self, request: web.Request) -> web.Response:
        return reply(self.faults.as_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(await request.json())
        except (ValueError, TypeError, AttributeError) as error:
            return reply({"error": str(error)}, 400)
        return reply(self.faults.as_dict())

    async def reset_faults(self, request: web.Request) -> web.Response:
        self.faults.reset()
        return reply(self.faults.as_dict())

    async def admin_restart(self, request: web.Request) -> web.Response:
        old = self.cluster.cost_model_pod()
        new = self.cluster.rollout_restart()
        return reply({"old_pod": old.name if old else None, "pod": new})

    async def admin_end_ephemeral(self, request: web.Request) -> web.Response:
        """``{"restart_cost_model": bool}``: end the debug containers (their sleep ran out), or restart
        cost-model in place, which ends them too."""
        body = await request.json() if request.can_read_body else {}
        ended = self.cluster.end_ephemeral_containers(bool(body.get("restart_cost_model")))
        return reply({"ended": ended})

    async def admin_state(self, request: web.Request) -> web.Response:
        return reply(self.cluster.state())

    async def admin_rbac(self, request: web.Request) -> web.Response:
        """The Role in force and what it granted, what was used, what was denied (``rbac.report()``)."""
        return reply(self.authorizer.report() if self.authorizer is not None else {"role": None})

    async def admin_log(self, request: web.Request) -> web.Response:
        """Append lines to the cost-model pod's log: ``{"lines": [...], "container": "cost-model"}``."""
        body = await request.json()
        lines = body.get("lines") or [body.get("line", "")]
        for line in lines:
            self.cluster.append_log(body.get("container", COST_MODEL_CONTAINER), line)
        return reply({"appended": len(lines)})
