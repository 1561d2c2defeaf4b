"""Generated ETL trees for the benchmarks (issue 11's shapes)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from kubecost_sim import bingen
from kubecost_sim.etlgen import generate, periods_ending_now, set_file_path, write_set_file

DAYS, HOURS = 91, 49  # 2 pipelines x (91 daily + 49 hourly) = 280 files


def default_tree(etl: Path, seed: int = 11) -> dict:
    """280 files, ~290 MB: 279 of 20-400 KB and the newest daily allocation set of 250 MB."""
    now = time.time()
    generate(etl, days=DAYS, hourly_hours=HOURS, file_bytes=140_000, seed=seed, now=now)
    start, end = periods_ending_now("1d", 2, now)[0]  # yesterday: a closed day, the big one
    big = bingen.encode_set("allocations", start, end, 250 * 1024 * 1024, random.Random(seed))
    write_set_file(set_file_path(etl, "allocations", "1d", start, end), big, mtime=end)
    return describe(etl)


def large_tree(etl: Path, seed: int = 12) -> dict:
    """The realistic large cluster: 91 days x 2 pipelines daily, 49 h hourly, about 3 GB."""
    generate(etl, days=DAYS, hourly_hours=HOURS, file_bytes=11_000_000, seed=seed)
    return describe(etl)


def describe(etl: Path) -> dict:
    sizes = [p.stat().st_size for p in etl.rglob("*") if p.is_file()]
    return {"files": len(sizes), "bytes": sum(sizes), "largest": max(sizes)}
