"""Whether Prometheus really holds the metrics Kubecost rebuilds a repair window from.

The configured retention says how long Prometheus *would* keep data; a wiped or re-installed
Prometheus, one that hit its size limit or was down for a day still reports ``15d``. A repair over
hours without samples overwrites good ETL files with empty ones (Kubecost issue #1920), so the
preflight asks for the data itself:

- one range query per required metric over the whole days Kubecost rebuilds, at a 1h step:
  ``count(count_over_time(<metric>[1h]))`` evaluated one second before each hour ends, so each
  point says whether the hour ``[h, h + 1h)`` has a sample (range selectors cover ``(t - 1h, t]``).
  A window longer than Prometheus' 11,000 points per series (458 days) is split, so the number of
  queries per metric is ``ceil(hours / 11000)``, never one per hour or per day;
- an hour counts as covered when *every* required metric has a sample in it; only hours that have
  ended are checked (today's in-progress hour has no complete data yet);
- a day's coverage is covered hours / checked hours; a day below ``min_coverage`` (default 1.0:
  every hour) is refused, and so is a day with any uncovered hour that the repair rebuilds in the
  hourly store (each such hour is one ``1h`` file that would become empty).

Errors are refusals (``CoverageUnknown`` when Prometheus cannot tell, ``InsufficientCoverage``
when it can and the data is missing): nothing is sent to Kubecost after either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from kubecost_etl.errors import ConfigError, Refusal
from kubecost_etl.etl.windows import DAY, HOUR, RepairWindow, ceil_to, iso
from kubecost_etl.repair.log_matching import NONE, hourly_mode
from kubecost_etl.repair.transport import TransportError

# Sources (see the README, "Which metrics"): OpenCost's cost-model, the open core of Kubecost's
# Asset (pkg/costmodel/cluster.go, ClusterNodes) and Allocation (pkg/costmodel/allocation.go)
# queries; node_total_hourly_cost is what cost-model's exporter publishes per node.
DEFAULT_METRICS = (
    "node_total_hourly_cost",
    "node_cpu_hourly_cost",
    "node_ram_hourly_cost",
    "container_cpu_allocation",
    "container_memory_allocation_bytes",
    "kube_pod_container_status_running",
)
MAX_POINTS = 11_000  # Prometheus refuses a range query with more points per series
_METRIC = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"\\]*"\s*,?)*\})?$'
)
_SHOWN_HOURS = 8  # missing hours listed per day before "..."


class CoverageUnknown(Refusal):
    """Prometheus could not say which hours it holds (unreachable, an error, an unreadable answer)."""


class InsufficientCoverage(Refusal):
    """Days of the window lack metrics: repairing them would empty their ETL files."""


def check_metrics(metrics, where: str) -> tuple[str, ...]:
    """The metric list as a tuple; ``ConfigError`` naming ``where`` when empty or not metric selectors."""
    if not isinstance(metrics, (list, tuple)) or not metrics:
        raise ConfigError(
            f"{where}: expected a non-empty list of metric names (e.g. {list(DEFAULT_METRICS[:2])}); "
            "an empty list would check nothing"
        )
    for metric in metrics:
        if not isinstance(metric, str) or not _METRIC.match(metric.strip()):
            raise ConfigError(
                f"{where}: {metric!r} is not a metric name or selector such as "
                'node_total_hourly_cost or node_total_hourly_cost{cluster_id="prod"}'
            )
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{where}: a metric is listed twice")
    return tuple(m.strip() for m in metrics)


def check_min_coverage(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(
            f"{where}: expected a fraction of the day's hours in (0, 1] (1 = every hour), got {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class DayCoverage:
    day: int  # unix seconds of the day's midnight (UTC)
    checked: int  # hours of the day that have ended
    covered: int  # hours with samples of every required metric
    missing: tuple[int, ...] = ()  # starts of the uncovered hours
    hourly_missing: tuple[int, ...] = ()  # uncovered hours the repair rebuilds in the hourly store
    missing_by_metric: dict = field(default_factory=dict)  # metric -> hours without its samples

    @property
    def fraction(self) -> float:
        return self.covered / self.checked if self.checked else 1.0

    @property
    def date(self) -> str:
        return iso(self.day)[:10]

    def describe(self) -> str:
        text = f"{self.date}: {self.covered}/{self.checked} hours ({self.fraction:.0%})"
        if self.missing:
            shown = [iso(h)[11:16] for h in self.missing[:_SHOWN_HOURS]]
            text += f", no samples at {', '.join(shown)}{', ...' if len(self.missing) > _SHOWN_HOURS else ''}"
        if self.hourly_missing:
            text += f"; {len(self.hourly_missing)} of them in the hourly store"
        lacking = [f"{metric} {count}h" for metric, count in self.missing_by_metric.items() if count]
        if lacking:
            text += f" (missing: {', '.join(lacking)})"
        return text

    def as_dict(self) -> dict:
        return {
            "day": self.day,
            "date": self.date,
            "checked": self.checked,
            "covered": self.covered,
            "fraction": round(self.fraction, 4),
            "missing": list(self.missing),
            "hourly_missing": list(self.hourly_missing),
            "missing_by_metric": dict(self.missing_by_metric),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DayCoverage:
        return cls(
            data["day"],
            data["checked"],
            data["covered"],
            tuple(data["missing"]),
            tuple(data["hourly_missing"]),
            dict(data["missing_by_metric"]),
        )


@dataclass(frozen=True)
class CoverageReport:
    metrics: tuple[str, ...]
    min_coverage: float
    days: tuple[DayCoverage, ...]
    queries: int
    source: str

    def below(self) -> list[DayCoverage]:
        """Days a repair must not rebuild: under ``min_coverage``, or with an hourly-store hour missing."""
        return [d for d in self.days if d.fraction < self.min_coverage or d.hourly_missing]

    def table(self) -> str:
        lines = [
            f"Prometheus coverage ({self.source}; {len(self.metrics)} metric(s), {self.queries} quer"
            f"{'y' if self.queries == 1 else 'ies'}; a day needs {self.min_coverage:.0%} of its hours):"
        ]
        below = {d.day for d in self.below()}
        for day in self.days:
            lines.append(f"  {'BELOW' if day.day in below else 'ok   '} {day.describe()}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "metrics": list(self.metrics),
            "min_coverage": self.min_coverage,
            "queries": self.queries,
            "source": self.source,
            "days": [d.as_dict() for d in self.days],
        }

    @classmethod
    def from_dict(cls, data: dict) -> CoverageReport:
        return cls(
            tuple(data["metrics"]),
            data["min_coverage"],
            tuple(DayCoverage.from_dict(d) for d in data["days"]),
            data["queries"],
            data["source"],
        )


def checked_hours(window: RepairWindow, now: int) -> list[int]:
    """Starts of the hours of the window's whole days that have ended by ``now``."""
    last = min(ceil_to(window.end, DAY), now - now % HOUR)
    return list(range(window.first_day, last, HOUR))


def range_queries(metric: str, hours: list[int]) -> list[dict[str, str]]:
    """The ``query_range`` parameters that cover ``hours`` (consecutive) for one metric, fewest possible."""
    queries = []
    for first in range(0, len(hours), MAX_POINTS):
        chunk = hours[first : first + MAX_POINTS]
        queries.append(
            {
                "query": f"count(count_over_time({metric}[1h]))",
                "start": str(chunk[0] + HOUR - 1),
                "end": str(chunk[-1] + HOUR - 1),
                "step": str(HOUR),
            }
        )
    return queries


def measure(
    http,
    metrics,
    window: RepairWindow,
    now: int,
    hourly_hours: int,
    min_coverage: float = 1.0,
) -> CoverageReport:
    """Ask Prometheus (``http``: a transport to its API root) which hours of the window hold every metric."""
    metrics = check_metrics(list(metrics), "repair.required_metrics")
    hours = checked_hours(window, now)
    present: dict[str, set[int]] = {}
    queries = 0
    for metric in metrics:
        present[metric] = set()
        for params in range_queries(metric, hours):
            queries += 1
            present[metric] |= _hours_with_samples(http, params, set(hours))
    rebuilt_hourly = _hourly_rebuilt(window, now, hourly_hours)
    days = []
    for day in window.days():
        day_hours = [h for h in hours if day <= h < day + DAY]
        missing = tuple(h for h in day_hours if not all(h in present[m] for m in metrics))
        days.append(
            DayCoverage(
                day,
                len(day_hours),
                len(day_hours) - len(missing),
                missing,
                tuple(h for h in missing if h in rebuilt_hourly),
                {m: sum(1 for h in day_hours if h not in present[m]) for m in metrics},
            )
        )
    return CoverageReport(
        metrics, min_coverage, tuple(days), queries, f"{http.description}/api/v1/query_range"
    )


def refuse_if_short(
    report: CoverageReport, allowed_days: set[str], snapshot: str | None = None, snapshot_where: str = ""
) -> list[DayCoverage]:
    """Raise ``InsufficientCoverage`` for days below the threshold not in ``allowed_days`` (``YYYY-MM-DD``).

    Returns the short days that ``allowed_days`` let through. ``snapshot`` is the newest verified
    snapshot that covers the refused days, named as the way out.
    """
    short = report.below()
    refused = [d for d in short if d.date not in allowed_days]
    if refused:
        advice = (
            f"restore those days from snapshot {snapshot} "
            f"(the newest verified one that covers them{snapshot_where})"
            " with the restore DAG (mode fill-missing keeps the other days as they are)"
            if snapshot
            else "no verified snapshot covers them, so leave them as they are (the ETL files still hold what "
            "Kubecost built when the metrics existed)"
        )
        raise InsufficientCoverage(
            f"Prometheus lacks metrics for {len(refused)} day(s) of the window; repairing them would "
            f"overwrite their ETL files with empty or partial data (Kubecost issue #1920): "
            + "; ".join(d.describe() for d in refused)
            + f". Instead, {advice}. To repair such a day anyway, name it in allow_partial_days "
            f"(e.g. {[d.date for d in refused][:3]}); repair.min_coverage is {report.min_coverage:g}"
        )
    return [d for d in short if d.date in allowed_days]


def parse_allowed_days(value, window: RepairWindow) -> set[str]:
    """``allow_partial_days`` from the trigger form: dates ``YYYY-MM-DD`` inside the window."""
    if value in (None, ""):
        return set()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"allow_partial_days: expected a list of dates such as ['2026-01-02'], got {value!r}"
        )
    days = {iso(d)[:10] for d in window.days()}
    allowed = set()
    for item in value:
        if not isinstance(item, str) or not re.match(r"^\d{4}-\d\d-\d\d$", item.strip()):
            raise ConfigError(f"allow_partial_days: {item!r} is not a date YYYY-MM-DD")
        if item.strip() not in days:
            raise ConfigError(
                f"allow_partial_days: {item.strip()} is not a day of the window ({min(days)} .. {max(days)})"
            )
        allowed.add(item.strip())
    return allowed


def newest_snapshot_covering(repository, days: list[int], scan: int = 20) -> str | None:
    """The newest verified snapshot whose manifest covers every one of ``days`` in both daily stores.

    Looks at the ``scan`` newest snapshots at most (one manifest read each): an old enough
    snapshot may still cover the days, but the newest good one is what a restore should use.
    """
    wanted = [(d, d + DAY) for d in days]
    for snapshot_id in list(reversed(repository.snapshot_ids()))[:scan]:
        verification = repository.load_verification(snapshot_id)
        if not (verification and verification.get("ok")):
            continue
        coverage = repository.load_manifest(snapshot_id).coverage
        if all(_store_covers(coverage.get(store) or {}, wanted) for store in ("allocations/1d", "assets/1d")):
            return snapshot_id
    return None


def _store_covers(store: dict, wanted: list[tuple[int, int]]) -> bool:
    from datetime import UTC, datetime

    def seconds(text: str) -> int:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())

    windows = [(seconds(s), seconds(e)) for s, e in store.get("windows") or []]
    return all(any(s <= start and end <= e for s, e in windows) for start, end in wanted)


def _hourly_rebuilt(window: RepairWindow, now: int, hourly_hours: int) -> set[int]:
    """Hours the repair rebuilds in the hourly store (as the log watch expects them), if it does."""
    if hourly_mode(window.start, now, hourly_hours) == NONE:
        return set()
    oldest = now - now % HOUR + HOUR - hourly_hours * HOUR
    return set(range(max(window.start - window.start % HOUR, oldest), ceil_to(window.end, HOUR), HOUR))


def _hours_with_samples(http, params: dict[str, str], expected: set[int]) -> set[int]:
    what = f"Prometheus range query {params['query']!r} at {http.description}"
    try:
        answer = http.get("/api/v1/query_range", params)
    except TransportError as exc:
        raise CoverageUnknown(
            f"{what}: no answer ({exc}); without it the repair cannot know which days "
            "Prometheus holds. Check repair.prometheus_url / repair.prometheus_service"
        ) from None
    if answer.status != 200:
        proxy = answer.api_server_status
        detail = (
            f"the Kubernetes API's service proxy: {proxy.get('message')}" if proxy else answer.excerpt(200)
        )
        raise CoverageUnknown(f"{what}: HTTP {answer.status}: {detail}")
    try:
        body = answer.json()
        if body.get("status") != "success" or body["data"]["resultType"] != "matrix":
            raise ValueError(f"status {body.get('status')!r}, {body.get('error') or 'not a matrix'}")
        hours = set()
        for series in body["data"]["result"]:
            for t, value in series["values"]:
                hour = round(float(t)) - (HOUR - 1)
                if hour in expected and not math.isnan(float(value)) and float(value) > 0:
                    hours.add(hour)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CoverageUnknown(
            f"{what}: unreadable answer ({type(exc).__name__}: {exc}): {answer.excerpt(120)}"
        ) from None
    return hours
