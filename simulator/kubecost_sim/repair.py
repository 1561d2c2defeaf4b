"""What one accepted repair request does in the background: log lines and rewritten set files.

Log messages per step (each line is ``<time> <LVL> <message>``; ``<id>`` is five random
letters, one per run; ``<W>`` a window like ``[2023-01-01T00:00:00+0000, 2023-01-02T00:00:00+0000)``;
``<T>`` a Go ``time.Time`` like ``2023-01-01 00:00:00 +0000 UTC``; ``<D>`` a Go duration).

Asset (``<P>`` = ``Asset``, driver ``AggregatedStore.Run``) and Allocation (``<P>`` =
``Allocation``, driver ``AggregatedStoreDriver``), first for ``[1d]``, then for ``[1h]`` when the
window starts inside the hourly store; one progress or error line per day (per hour for 1h)::

    INF ETL: <P>[1d]: ETLStore.Repair[<id>]: repairing <T start>, <T end>
    INF ETL: <P>[1d]: <driver>[<id>]: run: aggregated <W day> from 19 to 3 in <D>
    WRN ETL: <P>[1d]: Repair: error: cannot repair <W day>: coverage is <W prometheus coverage>
    INF ETL: <P>[1d]: ETLStore[<id>]: build: completed <W> in <D>: coverage <W files on disk> (66.7% complete)

CloudUsage, once per provider key (the repairing line is SIMULATED, the others documented)::

    INF ETL: CloudUsage[<key>]: CloudUsageStore.Repair[<id>]: repairing <T start>, <T end>
    INF ETL: CloudUsage[<key>]: Build[<id>]: QueryCloudUsage <W day>
    INF ETL: CloudUsage[<key>]: Build[<id>]: build: completed <W> in <D>: coverage <W> (100.0 complete)

Reconciliation and CloudCost (2.x) are SIMULATED (no public example exists), once per key::

    INF ETL: Reconciliation[<key>]: ReconciliationStore.Repair[<id>]: repairing <T start>, <T end>
    INF ETL: Reconciliation[<key>]: Reconcile[<id>]: reconciled <W day>: 17 of 19 assets matched in <D>
    INF ETL: Reconciliation[<key>]: ReconciliationStore[<id>]: build: completed <W> in <D>: coverage <W> (100.0% complete)
    INF ETL: CloudCost[<key>]: CloudCostStore.Repair[<id>]: repairing <T start>, <T end>
    INF ETL: CloudCost[<key>]: CloudCostIngestor[<id>]: ingested <W day>: 42 cloud costs in <D>
    INF ETL: CloudCost[<key>]: CloudCostStore[<id>]: build: completed <W> in <D>: coverage <W> (100.0% complete)

Fault ``repair_fail_step``: right after its repairing line the step logs
``ERR <prefix>: MergeRange error: boundary error: requested <W>; supported <W>`` (``<prefix>`` is the
step's ``ETL: <label>: ETLStore.Repair[<id>]`` / ``ETL: CloudUsage[<key>]: Build[<id>]`` ...) and stops.
Fault ``restart_during_step``: after two progress lines (fewer if the step has fewer periods, so
it never looks finished) ``restart_pod()`` is called and the step stops.

Only Asset and Allocation write files: each repaired period's set file is replaced with new
content and a new mtime. Periods starting before the Prometheus cutoff are not touched.
"""  # noqa: E501 (two log formats above are quoted whole)

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubecost_sim import bingen, etlgen
from kubecost_sim.loglines import go_duration, go_time, run_id, window_text
from kubecost_sim.windows import DAY, HOUR

DEFAULT_SET_BYTES = 64 * 1024  # size of a rebuilt set whose old file was missing or empty
RESTART_AFTER_PROGRESS_LINES = 2


class RepairStopped(Exception):
    """The step ends early: it failed, or the pod restarted under it."""


@dataclass(frozen=True)
class RepairRequest:
    """An accepted repair with the fault switches as they were when it was requested."""

    step: str  # asset, cloudUsage, reconciliation, allocation, cloudCost
    start: int
    end: int
    provider_keys: tuple[str, ...]
    fail: bool
    restart: bool
    seconds_per_day: float


@dataclass
class RepairContext:
    """What a running repair needs from its cost-model."""

    etl_dir: Path
    emit: Callable[[str, str], None]  # (level, message); raises RepairStopped once the pod restarted
    restart_pod: Callable[[], None]
    now: Callable[[], float]
    prometheus_retention_seconds: int
    hourly_hours: int
    repairing: set[Path]  # set files a running repair has still to rebuild (shown by /etl/status)
    rng: random.Random
    held: Callable[[], bool] = lambda: False  # while true, the accepted repair has not started yet


@dataclass(frozen=True)
class _Store:
    label: str  # Asset, Allocation
    driver: str  # the progress line's component
    pipeline: str  # folder under bingen/


_STORES = {
    "asset": _Store("Asset", "AggregatedStore.Run", "assets"),
    "allocation": _Store("Allocation", "AggregatedStoreDriver", "allocations"),
}


async def run_repair(request: RepairRequest, context: RepairContext) -> None:
    job = _RepairJob(request, context)
    while context.held():  # the repair_hold_steps fault: a test releases it when it is ready
        await asyncio.sleep(0.05)
    try:
        if request.step in _STORES:
            await job.repair_store(_STORES[request.step])
        else:
            for key in request.provider_keys:
                await job.repair_cloud(key)
    except RepairStopped:
        pass


class _RepairJob:
    def __init__(self, request: RepairRequest, context: RepairContext):
        self.request = request
        self.context = context
        self.progress_lines = 0

    async def repair_store(self, store: _Store) -> None:
        now = self.context.now()
        await self._repair_resolution(store, "1d", DAY, now)
        current_hour = int(now) - int(now) % HOUR
        hourly_store_start = current_hour + HOUR - self.context.hourly_hours * HOUR
        if self.request.start >= hourly_store_start:
            await self._repair_resolution(store, "1h", HOUR, now)

    async def _repair_resolution(self, store: _Store, resolution: str, seconds: int, now: float) -> None:
        label = f"{store.label}[{resolution}]"
        periods, start, end = self._covering_periods(seconds, now)
        repair_id = self._id()
        self._info(f"ETL: {label}: ETLStore.Repair[{repair_id}]: repairing {go_time(start)}, {go_time(end)}")
        prometheus_coverage = self._prometheus_coverage(seconds, now)
        self._fail_if_asked(f"ETL: {label}: ETLStore.Repair[{repair_id}]", start, end, prometheus_coverage)

        # Periods Prometheus still holds get rebuilt; /etl/status shows them as repairing until then.
        rebuildable = {
            period: etlgen.set_file_path(self.context.etl_dir, store.pipeline, resolution, *period)
            for period in periods
            if period[0] >= prometheus_coverage[0]
        }
        self.context.repairing.update(rebuildable.values())
        try:
            await self._rebuild_periods(store, label, seconds, periods, rebuildable, prometheus_coverage)
        finally:
            self.context.repairing.difference_update(rebuildable.values())

        complete = 100 * len(rebuildable) / len(periods) if periods else 100.0
        self._info(
            f"ETL: {label}: ETLStore[{self._id()}]: build: completed {window_text(start, end)} "
            f"in {self._took()}: "
            f"coverage {window_text(*self._disk_coverage(store.pipeline, resolution, start, end))} "
            f"({complete:.1f}% complete)"
        )

    async def _rebuild_periods(
        self,
        store: _Store,
        label: str,
        seconds: int,
        periods: list[tuple[int, int]],
        rebuildable: dict[tuple[int, int], Path],
        prometheus_coverage: tuple[int, int],
    ) -> None:
        run = self._id()
        rng = self.context.rng
        for period in periods:
            await self._before_period(len(periods), seconds)
            path = rebuildable.get(period)
            if path is None:
                self.context.emit(
                    "WRN",
                    f"ETL: {label}: Repair: error: cannot repair {window_text(*period)}: "
                    f"coverage is {window_text(*prometheus_coverage)}",
                )
                continue
            self._rebuild_set_file(store.pipeline, path, *period)
            self.context.repairing.discard(path)
            self._progress(
                f"ETL: {label}: {store.driver}[{run}]: run: aggregated {window_text(*period)} "
                f"from {rng.randint(10, 40)} to {rng.randint(1, 9)} "
                f"in {go_duration(rng.uniform(20e-6, 900e-6))}"
            )

    async def repair_cloud(self, key: str) -> None:
        if self.request.step == "cloudUsage":
            await self._repair_cloud_usage(key)
        else:
            await self._repair_cloud_store(key)

    async def _repair_cloud_usage(self, key: str) -> None:
        periods, start, end = self._covering_periods(DAY, self.context.now())
        prefix = f"ETL: CloudUsage[{key}]"
        repair_id, run = self._id(), self._id()
        self._info(
            f"{prefix}: CloudUsageStore.Repair[{repair_id}]: repairing {go_time(start)}, {go_time(end)}"
        )
        self._fail_if_asked(f"{prefix}: Build[{run}]", start, end, (start + DAY, end))
        for period in periods:
            await self._before_period(len(periods), DAY)
            self._progress(f"{prefix}: Build[{run}]: QueryCloudUsage {window_text(*period)}")
        window = window_text(start, end)
        self._info(
            f"{prefix}: Build[{run}]: build: completed {window} in {self._took()}: "
            f"coverage {window} (100.0 complete)"
        )

    async def _repair_cloud_store(self, key: str) -> None:
        """Reconciliation or CloudCost: no public log example exists, these lines are invented."""
        periods, start, end = self._covering_periods(DAY, self.context.now())
        component, store, progress = {
            "reconciliation": ("Reconciliation", "ReconciliationStore", "Reconcile"),
            "cloudCost": ("CloudCost", "CloudCostStore", "CloudCostIngestor"),
        }[self.request.step]
        prefix = f"ETL: {component}[{key}]"
        repair_id, run = self._id(), self._id()
        self._info(f"{prefix}: {store}.Repair[{repair_id}]: repairing {go_time(start)}, {go_time(end)}")
        self._fail_if_asked(f"{prefix}: {store}.Repair[{repair_id}]", start, end, (start + DAY, end))
        rng = self.context.rng
        for period in periods:
            await self._before_period(len(periods), DAY)
            took = go_duration(rng.uniform(1e-3, 40e-3))
            if self.request.step == "reconciliation":
                detail = (
                    f"reconciled {window_text(*period)}: {rng.randint(10, 19)} of 19 assets matched in {took}"
                )
            else:
                detail = f"ingested {window_text(*period)}: {rng.randint(20, 60)} cloud costs in {took}"
            self._progress(f"{prefix}: {progress}[{run}]: {detail}")
        window = window_text(start, end)
        self._info(
            f"{prefix}: {store}[{self._id()}]: build: completed {window} in {self._took()}: "
            f"coverage {window} (100.0% complete)"
        )

    def _covering_periods(self, seconds: int, now: float) -> tuple[list[tuple[int, int]], int, int]:
        """Whole periods covering the request, cut off at the end of the current period; their span."""
        first = self.request.start - self.request.start % seconds
        current_end = int(now) - int(now) % seconds + seconds
        last_end = min(-(-self.request.end // seconds) * seconds, current_end)
        periods = [(start, start + seconds) for start in range(first, last_end, seconds)]
        if not periods:  # the window lies in the future: nothing to rebuild
            return periods, self.request.start, self.request.end
        return periods, periods[0][0], periods[-1][1]

    def _prometheus_coverage(self, seconds: int, now: float) -> tuple[int, int]:
        """Periods Prometheus still has every sample for: from the first one after its cutoff."""
        cutoff = int(now) - self.context.prometheus_retention_seconds
        return -(-cutoff // seconds) * seconds, int(now) - int(now) % seconds + seconds

    def _disk_coverage(self, pipeline: str, resolution: str, start: int, end: int) -> tuple[int, int]:
        windows = [window for _, window in etlgen.set_files(self.context.etl_dir, pipeline, resolution)]
        if not windows:
            return start, end
        return min(first for first, _ in windows), max(last for _, last in windows)

    def _rebuild_set_file(self, pipeline: str, path: Path, start: int, end: int) -> None:
        old_size = path.stat().st_size if path.exists() else 0
        size = old_size if old_size > bingen.EMPTY_SET_BYTES else DEFAULT_SET_BYTES
        data = bingen.encode_set(pipeline, start, end, size, self.context.rng)
        etlgen.write_set_file(path, data, mtime=self.context.now())

    def _fail_if_asked(self, prefix: str, start: int, end: int, supported: tuple[int, int]) -> None:
        if self.request.fail:
            self.context.emit(
                "ERR",
                f"{prefix}: MergeRange error: boundary error: requested {window_text(start, end)}; "
                f"supported {window_text(*supported)}",
            )
            raise RepairStopped

    async def _before_period(self, period_count: int, seconds: int) -> None:
        """Pace the work, and restart the pod partway through when the fault asks for it."""
        if self.request.restart and self.progress_lines >= min(
            RESTART_AFTER_PROGRESS_LINES, period_count - 1
        ):
            self.context.restart_pod()
            raise RepairStopped
        await asyncio.sleep(self.request.seconds_per_day * seconds / DAY)

    def _progress(self, message: str) -> None:
        self._info(message)
        self.progress_lines += 1

    def _info(self, message: str) -> None:
        self.context.emit("INF", message)

    def _id(self) -> str:
        return run_id(self.context.rng)

    def _took(self) -> str:
        return go_duration(self.context.rng.uniform(5e-3, 90e-3))
