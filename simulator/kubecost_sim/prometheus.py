"""A Prometheus server that knows how long it keeps data and which samples it really holds.

Serves what a repair preflight asks: the retention (``/api/v1/status/runtimeinfo``,
``/api/v1/status/flags``, with an optional size limit: ``15d or 10GiB``), instant and range queries
(``/api/v1/query``, ``/api/v1/query_range``) over the metrics Kubecost's ETL is built from, and
``/-/ready``. Response shapes and error texts follow Prometheus' HTTP API.

Data existence is real: every series is scraped each ``SCRAPE_SECONDS`` (on the minute), and a
sample exists at time ``t`` only if ``t`` lies inside the retention (``now - retention .. now``),
at or after ``prometheus_data_from`` (a wiped or re-installed Prometheus still reporting 15d)
and outside every ``prometheus_gap`` ``[S, E)`` (a Prometheus that was down). Those switches and
the query faults live in ``Faults`` so tests flip them at runtime (``POST /_sim/faults``).

The query engine is a small subset of PromQL, enough for presence checks, evaluated like
Prometheus does (instant selectors look back ``LOOKBACK_SECONDS``; range selectors ``m[d]``
cover ``(t - d, t]``): a metric name (``m`` or ``m{}``), ``count_over_time(m[d])`` or
``present_over_time(m[d])``, optionally wrapped in ``count``, ``sum``, ``group``, ``min`` or
``max``. Other expressions answer 400 naming what the simulator does not evaluate; a metric it
does not export answers an empty result, as Prometheus does.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from kubecost_sim.faults import Faults, parse_gap
from kubecost_sim.loglines import rfc3339_nano
from kubecost_sim.requestlog import RequestLog
from kubecost_sim.windows import parse_duration

LOOKBACK_SECONDS = 300  # Prometheus' default lookback: a query slightly in the future still sees "now"
SCRAPE_SECONDS = 60
MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series

_NODE = {"node": "sim-node-1", "instance": "sim-node-1", "provider_id": "aws:///us-east-1a/i-0sim1"}
_POD = {
    "namespace": "kubecost",
    "pod": "kubecost-cost-analyzer-0",
    "container": "cost-model",
    "node": "sim-node-1",
}
# What cost-model's exporter, kube-state-metrics and cAdvisor export in the simulated cluster
# (one series each).
SERIES: dict[str, dict[str, str]] = {
    "up": {"instance": "localhost:9090", "job": "prometheus"},
    "node_total_hourly_cost": {**_NODE, "instance_type": "m5.large", "job": "kubecost"},
    "node_cpu_hourly_cost": {**_NODE, "instance_type": "m5.large", "job": "kubecost"},
    "node_ram_hourly_cost": {**_NODE, "instance_type": "m5.large", "job": "kubecost"},
    "node_gpu_hourly_cost": {**_NODE, "instance_type": "m5.large", "job": "kubecost"},
    "kubecost_node_is_spot": {**_NODE, "job": "kubecost"},
    "kubecost_cluster_info": {"id": "cluster-one", "provider": "AWS", "job": "kubecost"},
    "pv_hourly_cost": {"volumename": "pvc-sim-1", "persistentvolume": "pvc-sim-1", "job": "kubecost"},
    "container_cpu_allocation": {**_POD, "job": "kubecost"},
    "container_memory_allocation_bytes": {**_POD, "job": "kubecost"},
    "kube_pod_container_status_running": {**_POD, "job": "kube-state-metrics"},
    "kube_pod_container_resource_requests": {
        **_POD,
        "resource": "cpu",
        "unit": "core",
        "job": "kube-state-metrics",
    },
    "kube_node_status_capacity_cpu_cores": {"node": "sim-node-1", "job": "kubecost"},
    "kube_node_status_capacity_memory_bytes": {"node": "sim-node-1", "job": "kubecost"},
    "container_cpu_usage_seconds_total": {**_POD, "job": "kubelet"},
    "container_memory_working_set_bytes": {**_POD, "job": "kubelet"},
}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^({_NAME})(?:\{{\}})?$")
_OVER_TIME = re.compile(rf"^(count_over_time|present_over_time)\(\s*({_NAME})(?:\{{\}})?\[(\w+)\]\s*\)$")
_AGGREGATION = re.compile(r"^(count|sum|group|min|max)\s*\((.*)\)$", re.DOTALL)


class _BadData(ValueError):
    """A request Prometheus answers with 400 ``bad_data``."""


@dataclass(frozen=True)
class _Expression:
    metric: str
    function: str | None = None  # count_over_time, present_over_time or None (instant selector)
    range_seconds: int = 0
    aggregation: str | None = None


class Prometheus:
    def __init__(
        self,
        retention_seconds: int,
        request_log: RequestLog,
        now: Callable[[], float] = time.time,
        faults: Faults | None = None,
        retention_size: str | None = None,
    ):
        self.retention_seconds = retention_seconds
        self.retention_size = retention_size  # e.g. "10GiB": reported only (no size is really used)
        self.request_log = request_log
        self.now = now
        self.faults = faults or Faults()
        self.started_at = now()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.request_log.middleware])
        app.router.add_get("/api/v1/status/runtimeinfo", self._runtime_info)
        app.router.add_get("/api/v1/status/flags", self._flags)
        for method in ("GET", "POST"):
            app.router.add_route(method, "/api/v1/query", self._query)
            app.router.add_route(method, "/api/v1/query_range", self._query_range)
        app.router.add_get("/-/ready", self._ready)
        app.router.add_get("/-/healthy", self._healthy)
        return app

    # ------------------------------------------------------------------------ status

    async def _runtime_info(self, request: web.Request) -> web.Response:
        retention = prometheus_duration(self.retention_seconds)
        if self.retention_size:
            retention = (
                f"{retention} or {self.retention_size}" if self.retention_seconds else self.retention_size
            )
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
                "storageRetention": retention,
            }
        )

    async def _flags(self, request: web.Request) -> web.Response:
        return _success(
            {
                "storage.tsdb.path": "/data",
                "storage.tsdb.retention": "0s",
                "storage.tsdb.retention.size": self.retention_size or "0B",
                "storage.tsdb.retention.time": flag_duration(self.retention_seconds),
                "web.enable-lifecycle": "true",
            }
        )

    # ----------------------------------------------------------------------- queries

    async def _query(self, request: web.Request) -> web.Response:
        params = await _params(request)
        faulted = await self._query_fault()
        if faulted is not None:
            return faulted
        now = self.now()
        try:
            expression = _parse_expression(params.get("query", ""))
            at = _parse_time(params["time"], "time") if "time" in params else now
        except _BadData as exc:
            return _bad_data(str(exc))
        result = []
        for labels, value in self._evaluate(expression, [at], now):
            result.append({"metric": labels, "value": [_number(at), value[0][1]]})
        return _success({"resultType": "vector", "result": result})

    async def _query_range(self, request: web.Request) -> web.Response:
        params = await _params(request)
        faulted = await self._query_fault()
        if faulted is not None:
            return faulted
        try:
            expression = _parse_expression(params.get("query", ""))
            start = _parse_time(params.get("start", ""), "start")
            end = _parse_time(params.get("end", ""), "end")
            if end < start:
                raise _BadData('invalid parameter "end": end timestamp must not be before start time')
            step = _parse_step(params.get("step", ""))
            if (end - start) / step > MAX_POINTS:
                raise _BadData(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
                    "query resolution (?step=XX)"
                )
        except _BadData as exc:
            return _bad_data(str(exc))
        times = [start + k * step for k in range(int((end - start) // step) + 1)]
        result = [
            {"metric": labels, "values": values}
            for labels, values in self._evaluate(expression, times, self.now())
        ]
        return _success({"resultType": "matrix", "result": result})

    async def _query_fault(self) -> web.Response | None:
        if self.faults.prometheus_delay_seconds:
            await asyncio.sleep(self.faults.prometheus_delay_seconds)
        if self.faults.prometheus_http_status is not None:
            status = self.faults.prometheus_http_status
            kind = "bad_data" if 400 <= status < 500 else "internal"
            return web.json_response(
                {"status": "error", "errorType": kind, "error": f"kubecost_sim fault: HTTP {status}"},
                status=status,
            )
        if self.faults.prometheus_body is not None:
            return web.Response(body=self.faults.prometheus_body.encode(), content_type="application/json")
        return None

    def _evaluate(self, expression: _Expression, times: list[float], now: float) -> list[tuple[dict, list]]:
        """``[(labels, [[t, "value"], ...])]``: the series with at least one point, as Prometheus
        returns them.
        """
        labels = SERIES.get(expression.metric)
        if labels is None:
            return []
        points = []
        for t in times:
            if expression.function is None:
                value = 1.0 if self._samples(t - LOOKBACK_SECONDS, t, now) else None
            else:
                count = self._samples(t - expression.range_seconds, t, now)
                value = None if not count else float(count if expression.function == "count_over_time" else 1)
            if value is not None:
                if expression.aggregation in ("count", "group"):
                    value = 1.0  # one series
                points.append([_number(t), _value(value)])
        if not points:
            return []
        if expression.aggregation:
            shown = {}
        elif expression.function:
            shown = dict(labels)
        else:
            shown = {"__name__": expression.metric, **labels}
        return [(shown, points)]

    def _samples(self, after: float, until: float, now: float) -> int:
        """How many scrapes (on multiples of ``SCRAPE_SECONDS``) in ``(after, until]`` hold a sample."""
        oldest = now - self.retention_seconds
        if self.faults.prometheus_data_from is not None:
            oldest = max(oldest, self.faults.prometheus_data_from)
        held = [(oldest, now + 1)]  # [from, to) where samples exist; now itself was scraped
        for gap in self.faults.prometheus_gap:
            gap_start, gap_end = parse_gap(gap)
            held = [
                piece
                for s, e in held
                for piece in ((s, min(e, gap_start)), (max(s, gap_end), e))
                if piece[0] < piece[1]
            ]
        total = 0
        for s, e in held:
            low = max(math.floor(after) + 1, math.ceil(s))
            high = min(math.floor(until), math.ceil(e) - 1)
            if high >= low:
                total += max(0, high // SCRAPE_SECONDS - -(-low // SCRAPE_SECONDS) + 1)
        return total

    # ------------------------------------------------------------------------ health

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


async def _params(request: web.Request) -> dict:
    params = dict(request.query)
    if request.method == "POST":
        params.update(await request.post())
    return params


def _parse_expression(text: str) -> _Expression:
    text = text.strip()
    if not text:
        raise _BadData('invalid parameter "query": parse error: no expression found in input')
    aggregation = None
    match = _AGGREGATION.match(text)
    if match:
        aggregation, text = match.group(1), match.group(2).strip()
    selector = _SELECTOR.match(text)
    if selector:
        return _Expression(selector.group(1), aggregation=aggregation)
    over_time = _OVER_TIME.match(text)
    if over_time:
        try:
            seconds = parse_duration(over_time.group(3))
        except ValueError:
            raise _BadData(
                f'invalid parameter "query": parse error: bad duration {over_time.group(3)!r}'
            ) from None
        return _Expression(over_time.group(2), over_time.group(1), seconds, aggregation)
    raise _BadData(
        f'invalid parameter "query": kubecost_sim does not evaluate {text!r} (it knows m, m{{}}, '
        "count_over_time(m[d]), present_over_time(m[d]), optionally inside count/sum/group/min/max)"
    )


def _parse_time(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _BadData(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from None


def _parse_step(text: str) -> float:
    try:
        step = float(text)
    except ValueError:
        try:
            step = float(parse_duration(text))
        except ValueError:
            raise _BadData(f'invalid parameter "step": cannot parse "{text}" to a valid duration') from None
    if step <= 0:
        raise _BadData(
            'invalid parameter "step": zero or negative query resolution step widths are not accepted. '
            "Try a positive integer"
        )
    return step


def _number(t: float) -> float | int:
    return int(t) if float(t).is_integer() else round(t, 3)


def _value(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _success(data: dict) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _bad_data(message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": "bad_data", "error": message}, status=400)
