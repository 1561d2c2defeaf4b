"""A Prometheus server that only knows how long it keeps data.

Serves what a repair preflight asks: the retention (``/api/v1/status/runtimeinfo``,
``/api/v1/status/flags``), whether samples exist at a past time (``/api/v1/query``: one ``up``
sample for any query at a time inside retention, none before the cutoff) and ``/-/ready``.
Response shapes follow Prometheus' HTTP API; the query engine itself is not simulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from kubecost_sim.loglines import rfc3339_nano
from kubecost_sim.requestlog import RequestLog

LOOKBACK_SECONDS = 300  # Prometheus' default lookback: a query slightly in the future still sees "now"
_SCRAPE_LABELS = {"__name__": "up", "instance": "localhost:9090", "job": "prometheus"}


class Prometheus:
    def __init__(self, retention_seconds: int, request_log: RequestLog, now: Callable[[], float] = time.time):
        self.retention_seconds = retention_seconds
        self.request_log = request_log
        self.now = now
        self.started_at = now()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.request_log.middleware])
        app.router.add_get("/api/v1/status/runtimeinfo", self._runtime_info)
        app.router.add_get("/api/v1/status/flags", self._flags)
        app.router.add_route("GET", "/api/v1/query", self._query)
        app.router.add_route("POST", "/api/v1/query", self._query)
        app.router.add_get("/-/ready", self._ready)
        app.router.add_get("/-/healthy", self._healthy)
        return app

    async def _runtime_info(self, request: web.Request) -> web.Response:
        return _success(
            {
                "startTime": rfc3339_nano(self.started_at),
                "CWD": "/prometheus",
                "reloadConfigSuccess": True,
                "lastConfigTime": rfc3339_nano(self.started_at),
                "corruptionCount": 0,
                "goroutineCount": 42,
                "GOMAXPROCS": 2,
                "GOGC": "",
                "GODEBUG": "",
                "storageRetention": prometheus_duration(self.retention_seconds),
            }
        )

    async def _flags(self, request: web.Request) -> web.Response:
        return _success(
            {
                "storage.tsdb.path": "/data",
                "storage.tsdb.retention": "0s",
                "storage.tsdb.retention.size": "0B",
                "storage.tsdb.retention.time": flag_duration(self.retention_seconds),
                "web.enable-lifecycle": "true",
            }
        )

    async def _query(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        if not params.get("query"):
            return _bad_data('invalid parameter "query": parse error: no expression found in input')
        now = self.now()
        try:
            at = _parse_time(params["time"]) if "time" in params else now
        except ValueError:
            return _bad_data(
                f'invalid parameter "time": cannot parse "{params["time"]}" to a valid timestamp'
            )
        in_retention = now - self.retention_seconds <= at <= now + LOOKBACK_SECONDS
        samples = [{"metric": _SCRAPE_LABELS, "value": [at, "1"]}] if in_retention else []
        return _success({"resultType": "vector", "result": samples})

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Healthy.\n")


def prometheus_duration(seconds: int) -> str:
    """Prometheus' ``model.Duration`` text: ``15d``, ``2w``, ``4d1h`` (years/weeks only when exact)."""
    if seconds == 0:
        return "0s"
    text = ""
    for unit, size, exact_only in (
        ("y", 365 * 86400, True),
        ("w", 7 * 86400, True),
        ("d", 86400, False),
        ("h", 3600, False),
        ("m", 60, False),
        ("s", 1, False),
    ):
        if exact_only and seconds % size:
            continue
        if seconds >= size:
            text += f"{seconds // size}{unit}"
            seconds %= size
    return text


def flag_duration(seconds: int) -> str:
    """The retention flag as a helm chart would pass it: one unit, e.g. ``15d`` or ``97h``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _success(data: dict) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _bad_data(message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": "bad_data", "error": message}, status=400)
