"""What is wrong with a cluster's cost history right now: pure functions of paths and times.

Inputs are relative paths under the ETL root (what the pod holds, what the latest verified
snapshot holds), the snapshot's time and "now"; nothing here reads a pod or a bucket.

Rules (Kubecost ages files out itself, and that is not a loss):

- **stale**: no verified snapshot, or the newest one is older than ``max_backup_age``.
- **lost files**: in the latest verified snapshot, absent from the pod. A set file older than the
  oldest file the pod still holds in the same store counts as aged out, as does an hourly file that
  ended more than ``hourly_hours`` before now. A store the pod lost entirely counts whole.
- **missing days**: a day without a file in a pod's daily store, between that store's oldest file
  and yesterday (today's file may not be built yet).
- **short hourly**: fewer hourly files than ``hourly_hours - 1`` among the last ``hourly_hours``
  hours (the current hour may not be built yet); Kubecost's docs recommend 49.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubecost_etl.etl.layout import DEFAULT_HOURLY_HOURS, KNOWN_STORES, RESOLUTIONS, parse_set_file

DAY, HOUR = RESOLUTIONS["1d"], RESOLUTIONS["1h"]
MAX_DAILY_SLOTS = 400  # a coverage map longer than this shows the newest slots only


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    """One thing wrong with one cluster; ``key`` is what alert bookkeeping deduplicates on."""

    key: str  # config | stale | quarantine | lost_files | missing_days | hourly_short | unreachable
    summary: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"key": self.key, "summary": self.summary, "details": self.details}


def staleness(latest_verified_at: datetime | None, now: datetime, max_age: timedelta) -> Condition | None:
    if latest_verified_at is None:
        return Condition(
            "stale", "no verified snapshot exists", {"max_backup_age_hours": max_age / timedelta(hours=1)}
        )
    age = now - latest_verified_at
    if age <= max_age:
        return None
    return Condition(
        "stale",
        f"newest verified snapshot is {_hours(age)} old (limit {_hours(max_age)})",
        {
            "age_hours": round(age / timedelta(hours=1), 1),
            "max_backup_age_hours": max_age / timedelta(hours=1),
        },
    )


def quarantine(objects: Iterable[str]) -> Condition | None:
    """Stored objects a verify found missing or wrong and no verify has found right since: every snapshot
    naming one fails a restore's verify until the next backup writes the file again (if the pod still
    has it)."""
    objects = sorted(objects)
    if not objects:
        return None
    return Condition(
        "quarantine",
        f"{len(objects)} stored object(s) found damaged by a verify; snapshots naming them cannot be "
        "restored until the next backup writes them again from the pod",
        {"objects": objects[:20]},
    )


def _hours(delta: timedelta) -> str:
    return f"{delta / timedelta(hours=1):.1f}h"


def _by_store(paths: Iterable[str]) -> dict[tuple[str, str], dict[int, str]]:
    """Set files per store: start -> path."""
    stores: dict[tuple[str, str], dict[int, str]] = {}
    for path in paths:
        set_file = parse_set_file(path)
        if set_file:
            stores.setdefault(set_file.store, {})[set_file.start] = path
    return stores


def lost_files(
    snapshot_paths: Iterable[str],
    pod_paths: Iterable[str],
    now: datetime,
    hourly_hours: int = DEFAULT_HOURLY_HOURS,
) -> list[str]:
    """Files of the snapshot the pod no longer has and Kubecost would not have aged out (sorted)."""
    pod = set(pod_paths)
    pod_oldest = {store: min(starts) for store, starts in _by_store(pod).items() if starts}
    hourly_edge = now.timestamp() - hourly_hours * HOUR
    lost = []
    for path in snapshot_paths:
        if path in pod:
            continue
        set_file = parse_set_file(path)
        if set_file is not None:
            if set_file.store in pod_oldest and set_file.start < pod_oldest[set_file.store]:
                continue  # older than anything the pod keeps in that store: aged out
            if set_file.resolution == "1h" and set_file.end <= hourly_edge:
                continue
        lost.append(path)
    return sorted(lost)


def _day_start(ts: float) -> int:
    return int(ts) - int(ts) % DAY


def missing_days(pod_paths: Iterable[str], now: datetime) -> dict[str, list[str]]:
    """Per daily store of the pod: the days (ISO start) missing between its oldest file and yesterday."""
    today = _day_start(now.timestamp())
    report = {}
    for (pipeline, res), files in sorted(_by_store(pod_paths).items()):
        if res != "1d" or not files:
            continue
        missing = [iso(day) for day in range(min(files), today, DAY) if day not in files]
        if missing:
            report[f"{pipeline}/{res}"] = missing
    return report


def hourly_coverage(
    pod_paths: Iterable[str], now: datetime, hourly_hours: int = DEFAULT_HOURLY_HOURS
) -> dict[str, int]:
    """Per hourly store: how many of the last ``hourly_hours`` hours (the current one included)
    have a file.
    """
    current = int(now.timestamp()) - int(now.timestamp()) % HOUR
    wanted = set(range(current - (hourly_hours - 1) * HOUR, current + 1, HOUR))
    stores = _by_store(pod_paths)
    return {
        f"{p}/{r}": len(wanted & set(stores.get((p, r), {})))
        for p, r in sorted(set(stores) | set(KNOWN_STORES))
        if r == "1h"
    }


def check_pod(
    snapshot_paths: Iterable[str] | None,
    pod_paths: Iterable[str],
    now: datetime,
    hourly_hours: int = DEFAULT_HOURLY_HOURS,
) -> list[Condition]:
    """The gap conditions of one cluster (``snapshot_paths`` None: no verified snapshot to compare with)."""
    pod_paths = list(pod_paths)
    conditions = []
    if snapshot_paths is not None:
        lost = lost_files(snapshot_paths, pod_paths, now, hourly_hours)
        if lost:
            conditions.append(
                Condition(
                    "lost_files",
                    f"{len(lost)} file(s) of the latest verified snapshot are missing from the pod",
                    {"paths": lost},
                )
            )
    days = missing_days(pod_paths, now)
    if days:
        count = sum(len(v) for v in days.values())
        conditions.append(
            Condition("missing_days", f"{count} day(s) missing in the pod's daily stores", {"days": days})
        )
    hourly = hourly_coverage(pod_paths, now, hourly_hours)
    short = {store: hours for store, hours in hourly.items() if hours < hourly_hours - 1}
    if short:
        conditions.append(
            Condition(
                "hourly_short",
                f"hourly coverage under {hourly_hours}h: " + ", ".join(f"{s} {h}h" for s, h in short.items()),
                {"hours": short, "wanted_hours": hourly_hours},
            )
        )
    return conditions


def coverage_map(
    pod_paths: Iterable[str],
    snapshot_paths: Iterable[str] | None,
    now: datetime,
    hourly_hours: int = DEFAULT_HOURLY_HOURS,
) -> list[dict]:
    """Per store: one slot per day (1d) or hour (1h) saying whether the pod and the snapshot have it.

    ``gap`` marks a slot the pod lacks although it should hold it (inside its daily range up to
    yesterday, or among the last ``hourly_hours`` hours save the current one). Stores of another
    resolution are listed with their file counts only.
    """
    pod = _by_store(pod_paths)
    snap = _by_store(snapshot_paths or [])
    ts = int(now.timestamp())
    stores = sorted(set(pod) | set(snap) | set(KNOWN_STORES))
    result = []
    for store in stores:
        pipeline, res = store
        have_pod, have_snap = pod.get(store, {}), snap.get(store, {})
        entry = {
            "store": f"{pipeline}/{res}",
            "pipeline": pipeline,
            "resolution": res,
            "pod_files": len(have_pod),
            "snapshot_files": len(have_snap),
            "slots": [],
            "gaps": 0,
        }
        if res == "1d":
            today = _day_start(ts)
            oldest = min([*have_pod, *have_snap], default=today)
            starts = list(range(max(oldest, today - (MAX_DAILY_SLOTS - 1) * DAY), today + DAY, DAY))
            pod_oldest = min(have_pod, default=today)
            expected = {s for s in starts if s < today and (s >= pod_oldest or s in have_snap)}
        elif res == "1h":
            current = ts - ts % HOUR
            starts = list(range(current - (hourly_hours - 1) * HOUR, current + HOUR, HOUR))
            expected = set(starts[:-1])
        else:
            result.append(entry)
            continue
        for start in starts:
            gap = start in expected and start not in have_pod
            entry["slots"].append(
                {"start": iso(start), "pod": start in have_pod, "snapshot": start in have_snap, "gap": gap}
            )
            entry["gaps"] += gap
        result.append(entry)
    return result
