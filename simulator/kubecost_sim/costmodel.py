"""The simulated Kubecost cost-model: the ETL repair API and ETL status over the set files.

Port 9003 (``model_app``) serves the paths below; port 9090 (``frontend_app``) serves the same
under ``/model`` as the frontend's nginx does, plus nginx's own ``/healthz``.

- ``GET /etl/asset/repair``, ``/etl/allocation/repair``, ``/etl/cloudUsage/repair``,
  ``/etl/asset/reconciliation/repair``, ``/cloudCost/repair`` with ``window=`` (and ``provider=``
  for the two cloud steps): answer at once with Kubecost's documented success body and repair in
  the background (see ``repair.py`` for the log lines).
- Errors (SIMULATED text, Kubecost's own is undocumented): a missing or bad window answers
  400 ``{"code":400,"message":"Invalid parameter: window: illegal window: <text>"}``; an unknown
  provider key 400 ``{"code":400,"message":"Invalid parameter: provider: no cloud integration
  with key '<key>'"}``; the ``repair_http_500`` fault 500 ``{"code":500,"message":"Internal
  Server Error: ..."}``.
- ``GET /etl/status``: SIMULATED shape, modelled on OpenCost's ``ETLStatus`` structs::

    {"code": 200, "data": {
      "allocation": {"1d": STORE, "1h": STORE}, "asset": {"1d": STORE, "1h": STORE},
      "cloud": {"<key>": {"cloudConnectionStatus": "Connection Successful", "providerType": "AWS"}}}}
    STORE = {"coverage": {"start": RFC3339, "end": RFC3339} | null, "lastRun": RFC3339,
             "progress": 0..1 (share of periods in the coverage that have a file),
             "resolution": "24h0m0s" | "1h0m0s", "startTime": RFC3339, "utcOffset": "+00:00",
             "isRepairing": bool,
             "backup": {"path": "/var/configs/db/etl/bingen/<pipeline>/<res>", "size": "<n> B",
                        "lastModified": RFC3339 | null, "fileCount": n,
                        "files": [{"name": "<start>-<end>", "size": "<n> B",
                                   "lastModified": RFC3339, "isRepairing": bool}]}}
- ``GET /healthz``: 200 ``OK``.

The fault switches are read when a request arrives. ``restart_during_step`` disarms itself once
it has restarted the pod, so a retried repair can succeed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from kubecost_sim.etlgen import RESOLUTION_SECONDS, set_files
from kubecost_sim.faults import Faults
from kubecost_sim.loglines import log_line, rfc3339_nano, window_text
from kubecost_sim.repair import RepairContext, RepairRequest, RepairStopped, run_repair
from kubecost_sim.requestlog import RequestLog
from kubecost_sim.windows import DAY, WindowError, parse_window

POD_ETL_ROOT = "/var/configs/db/etl"
DEFAULT_PROVIDER_KEYS = ("aws-123456789012",)

# step name (as used by the fault switches) -> path on port 9003
REPAIR_PATHS = {
    "asset": "/etl/asset/repair",
    "cloudUsage": "/etl/cloudUsage/repair",
    "reconciliation": "/etl/asset/reconciliation/repair",
    "allocation": "/etl/allocation/repair",
    "cloudCost": "/cloudCost/repair",
}
_CLOUD_STEPS_WITH_PROVIDER = ("cloudUsage", "reconciliation")
_STORE_STEPS = {"allocation": "allocations", "asset": "assets"}
# Go's encoding/json writes compact JSON; the documented bodies are byte-exact that way.
_compact_json = functools.partial(json.dumps, separators=(",", ":"))


class CostModel:
    def __init__(
        self,
        etl_dir: Path,
        faults: Faults,
        log: Callable[[str], None],
        restart_pod: Callable[[], None],
        request_log: RequestLog,
        prometheus_retention_seconds: int,
        hourly_hours: int = 49,
        now: Callable[[], float] = time.time,
        provider_keys: tuple[str, ...] = DEFAULT_PROVIDER_KEYS,
    ):
        self.etl_dir = Path(etl_dir)
        self.faults = faults
        self.log = log
        self.restart_pod = restart_pod
        self.request_log = request_log
        self.prometheus_retention_seconds = prometheus_retention_seconds
        self.hourly_hours = hourly_hours
        self.now = now
        self.provider_keys = provider_keys
        self.started_at = now()
        self._rng = random.Random()
        self._pod_generation = 0  # bumped by every restart; repairs of an older pod stay silent
        self._repairs: set[asyncio.Task] = set()
        self._repairing: set[Path] = set()
        self._last_run: dict[str, float] = {}

    def model_app(self) -> web.Application:
        return self._app(prefix="")

    def frontend_app(self) -> web.Application:
        app = self._app(prefix="/model")
        app.router.add_get("/healthz", self._healthz)  # nginx's own health check
        return app

    def on_pod_restart(self) -> None:
        """The cost-model process died: running repairs stop and log nothing more."""
        self._pod_generation += 1
        self._repairing.clear()
        for task in list(self._repairs):
            loop = task.get_loop()
            if _running_loop() is loop:
                task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)

    async def wait_idle(self) -> None:
        """Return once no repair is running (finished, failed or cancelled by a restart)."""
        while self._repairs:
            await asyncio.wait(list(self._repairs))

    def _app(self, prefix: str) -> web.Application:
        app = web.Application(middlewares=[self.request_log.middleware])
        for step, path in REPAIR_PATHS.items():
            app.router.add_get(prefix + path, self._repair_handler(step))
        app.router.add_get(prefix + "/etl/status", self._status)
        app.router.add_get(prefix + "/healthz", self._healthz)
        return app

    def _repair_handler(self, step: str):
        async def handle(request: web.Request) -> web.Response:
            return self._start_repair(step, request)

        return handle

    def _start_repair(self, step: str, request: web.Request) -> web.Response:
        if self._take_http_500(step):
            return _error(500, f"Internal Server Error: simulated failure of the {step} repair")
        window = request.query.get("window", "")
        try:
            start, end = parse_window(window, self.now())
        except WindowError as error:
            return _error(400, f"Invalid parameter: window: {error}")
        provider = request.query.get("provider") if step in _CLOUD_STEPS_WITH_PROVIDER else None
        if provider is not None and provider not in self.provider_keys:
            return _error(400, f"Invalid parameter: provider: no cloud integration with key '{provider}'")

        repair = RepairRequest(
            step=step,
            start=start,
            end=end,
            provider_keys=(provider,) if provider else self.provider_keys,
            fail=self.faults.repair_fail_step == step,
            restart=self.faults.restart_during_step == step,
            seconds_per_day=self.faults.repair_seconds_per_day,
        )
        task = asyncio.get_running_loop().create_task(run_repair(repair, self._repair_context(step)))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)
        return _json({"code": 200, "data": _success_message(step, start, end, provider)})

    def _take_http_500(self, step: str) -> bool:
        """Whether the 500 fault hits this request; a limited fault counts itself down."""
        if step not in self.faults.repair_http_500:
            return False
        remaining = self.faults.repair_http_500_times
        if remaining is None:
            return True
        if remaining <= 0:
            return False
        self.faults.repair_http_500_times = remaining - 1
        return True

    def _repair_context(self, step: str) -> RepairContext:
        generation = self._pod_generation

        def emit(level: str, message: str) -> None:
            if generation != self._pod_generation:
                raise RepairStopped
            self.log(log_line(self.now(), level, message))
            self._last_run[step] = self.now()

        def restart_pod() -> None:
            self.faults.restart_during_step = None
            self.restart_pod()

        return RepairContext(
            etl_dir=self.etl_dir,
            emit=emit,
            restart_pod=restart_pod,
            now=self.now,
            prometheus_retention_seconds=self.prometheus_retention_seconds,
            hourly_hours=self.hourly_hours,
            repairing=self._repairing,
            rng=self._rng,
            held=lambda: step in self.faults.repair_hold_steps,
        )

    async def _status(self, request: web.Request) -> web.Response:
        data: dict = {
            step: {
                resolution: self._store_status(step, pipeline, resolution)
                for resolution in RESOLUTION_SECONDS
            }
            for step, pipeline in _STORE_STEPS.items()
        }
        data["cloud"] = {
            key: {"cloudConnectionStatus": "Connection Successful", "providerType": "AWS"}
            for key in self.provider_keys
        }
        return _json({"code": 200, "data": data})

    def _store_status(self, step: str, pipeline: str, resolution: str) -> dict:
        seconds = RESOLUTION_SECONDS[resolution]
        stored = [
            (path, window, path.stat()) for path, window in set_files(self.etl_dir, pipeline, resolution)
        ]
        files = [
            {
                "name": path.name,
                "size": f"{stat.st_size} B",
                "lastModified": rfc3339_nano(stat.st_mtime),
                "isRepairing": path in self._repairing,
            }
            for path, _, stat in stored
        ]
        coverage, progress = None, 0.0
        if stored:
            start = min(window[0] for _, window, _ in stored)
            end = max(window[1] for _, window, _ in stored)
            coverage = {"start": rfc3339_nano(start), "end": rfc3339_nano(end)}
            progress = round(len(stored) * seconds / (end - start), 4)
        newest = max((stat.st_mtime for _, _, stat in stored), default=None)
        return {
            "coverage": coverage,
            "lastRun": rfc3339_nano(self._last_run.get(step, self.started_at)),
            "progress": progress,
            "resolution": "24h0m0s" if seconds == DAY else "1h0m0s",
            "startTime": rfc3339_nano(self.started_at),
            "utcOffset": "+00:00",
            "isRepairing": any(file["isRepairing"] for file in files),
            "backup": {
                "path": f"{POD_ETL_ROOT}/bingen/{pipeline}/{resolution}",
                "size": f"{sum(stat.st_size for _, _, stat in stored)} B",
                "lastModified": rfc3339_nano(newest) if newest is not None else None,
                "fileCount": len(files),
                "files": files,
            },
        }

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")


def _success_message(step: str, start: int, end: int, provider: str | None) -> str:
    providers = f"for provider {provider}" if provider else "for all providers"
    return {
        "asset": "Repairing Asset ETL",
        "allocation": "Repairing Allocation ETL",
        "cloudUsage": f"Cloud Usage Repair process has begun for {window_text(start, end)} {providers}",
        "reconciliation": (
            f"Reconciliation Repair process has begun for {window_text(start, end)} {providers}"
        ),
        "cloudCost": "Rebuilding Cloud Usage For All Providers",
    }[step]


def _json(body: dict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_compact_json)


def _error(status: int, message: str) -> web.Response:
    return _json({"code": status, "message": message}, status)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
