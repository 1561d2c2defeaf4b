"""Generate a Kubecost ETL tree: ``bingen/{allocations,assets}/{1d,1h}/<start>-<end>``.

Each store holds consecutive UTC-aligned periods ending with the current (partial) day or hour.
Contents are deterministic for a given seed and ``now``; each file's mtime is its end time, or
``now`` for the current period, as if Kubecost had written it when the period closed.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from kubecost_sim import bingen

PIPELINES = ("allocations", "assets")
RESOLUTION_SECONDS = {"1d": 86400, "1h": 3600}
EMPTY_SET_SHARE = 0.05  # periods without data (e.g. before install) are stored as ~86-byte empty sets
SIZE_SPREAD = 0.2  # file sizes vary +-20% around the requested size


def generate(
    dir: Path, days: int, hourly_hours: int, file_bytes: int, seed: int, now: float | None = None
) -> list[Path]:
    """Write the tree under ``dir`` (the ETL root) and return the files written, sorted."""
    now = time.time() if now is None else now
    written = []
    for pipeline in PIPELINES:
        for resolution, count in (("1d", days), ("1h", hourly_hours)):
            for start, end in periods_ending_now(resolution, count, now):
                rng = random.Random(f"{seed}/{pipeline}/{resolution}/{start}")
                if rng.random() < EMPTY_SET_SHARE:
                    data = bingen.encode_empty_set(pipeline, start, end)
                else:
                    size = int(file_bytes * rng.uniform(1 - SIZE_SPREAD, 1 + SIZE_SPREAD))
                    data = bingen.encode_set(pipeline, start, end, size, rng)
                path = set_file_path(dir, pipeline, resolution, start, end)
                write_set_file(path, data, mtime=min(end, now))
                written.append(path)
    return sorted(written)


def periods_ending_now(resolution: str, count: int, now: float) -> list[tuple[int, int]]:
    """The last ``count`` aligned periods of a resolution, the current partial one included."""
    seconds = RESOLUTION_SECONDS[resolution]
    current = int(now) - int(now) % seconds
    return [
        (start, start + seconds) for start in range(current - (count - 1) * seconds, current + 1, seconds)
    ]


def store_dir(etl_dir: Path, pipeline: str, resolution: str) -> Path:
    return Path(etl_dir) / "bingen" / pipeline / resolution


def set_file_path(etl_dir: Path, pipeline: str, resolution: str, start: int, end: int) -> Path:
    return store_dir(etl_dir, pipeline, resolution) / f"{start}-{end}"


def set_file_window(name: str) -> tuple[int, int] | None:
    """``(start, end)`` from a set file's name; None for anything else (e.g. a temporary file)."""
    start, dash, end = name.partition("-")
    return (int(start), int(end)) if dash and start.isdigit() and end.isdigit() else None


def set_files(etl_dir: Path, pipeline: str, resolution: str) -> list[tuple[Path, tuple[int, int]]]:
    """The set files of one store, in name order, with their windows (other files left out)."""
    return [
        (path, window)
        for path in sorted(store_dir(etl_dir, pipeline, resolution).glob("*-*"))
        if (window := set_file_window(path.name)) is not None
    ]


def write_set_file(path: Path, data: bytes, mtime: float) -> None:
    """Replace a set file in one step, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(data)
    os.utime(partial, (mtime, mtime))
    os.replace(partial, path)
