"""The layout of Kubecost's ETL cache and what time it covers.

Files live at ``bingen/<pipeline>/<resolution>/<start>-<end>`` under the ETL root, with
``start``/``end`` in unix seconds (UTC), ``end - start`` equal to the resolution and ``start``
aligned to it. Anything else under the root is carried by backups but not interpreted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubecost_etl.errors import Refusal

RESOLUTIONS = {"1d": 86400, "1h": 3600}
KNOWN_STORES = [(p, r) for p in ("allocations", "assets") for r in ("1d", "1h")]
DEFAULT_HOURLY_HOURS = 49  # Kubecost's etlHourlyStoreDurationHours default

_SET_FILE = re.compile(r"^bingen/(?P<pipeline>[A-Za-z0-9_]+)/(?P<res>\d+[a-z])/(?P<start>\d+)-(?P<end>\d+)$")
# Relative paths we are willing to read or write: plain components, no dot-dot, no leading dash
# (so a name can never be taken for a command-line flag by tar or find in the pod).
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.+=@,-]*$")


class UnsafePathError(Refusal, ValueError):
    """A path that must never be read from or written into the pod."""


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a safe relative path under the ETL root, else raise."""
    if not path or path.startswith("/"):
        raise UnsafePathError(f"refusing path {path!r}: only relative paths under the ETL root are allowed")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _SAFE_COMPONENT.match(part):
            raise UnsafePathError(f"refusing path {path!r}: component {part!r} is not allowed")
    return path


@dataclass(frozen=True, order=True)
class SetFile:
    """One ETL set file, e.g. ``bingen/allocations/1d/1690761600-1690848000``."""

    pipeline: str
    resolution: str
    start: int
    end: int

    @property
    def store(self) -> tuple[str, str]:
        return (self.pipeline, self.resolution)

    @property
    def path(self) -> str:
        return f"bingen/{self.pipeline}/{self.resolution}/{self.start}-{self.end}"


def parse_set_file(path: str) -> SetFile | None:
    """Parse an ETL path; None for files that are not well-formed set files."""
    m = _SET_FILE.match(path)
    if not m:
        return None
    res, start, end = m["res"], int(m["start"]), int(m["end"])
    step = RESOLUTIONS.get(res)
    if step is not None and (end - start != step or start % step):
        return None
    if end <= start:
        return None
    return SetFile(m["pipeline"], res, start, end)


def is_bingen_path(path: str) -> bool:
    return path.startswith("bingen/")


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoreCoverage:
    """What one store (pipeline x resolution) covers: contiguous windows and the holes between."""

    pipeline: str
    resolution: str
    files: int = 0
    windows: list[tuple[int, int]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def covered_seconds(self) -> int:
        return sum(e - s for s, e in self.windows)

    def as_dict(self) -> dict:
        return {
            "store": f"{self.pipeline}/{self.resolution}",
            "files": self.files,
            "windows": [[_iso(s), _iso(e)] for s, e in self.windows],
            "gaps": [[_iso(s), _iso(e)] for s, e in self.gaps],
            "covered_hours": round(self.covered_seconds / 3600, 1),
            "warnings": list(self.warnings),
        }


def coverage(paths, hourly_hours: int = DEFAULT_HOURLY_HOURS) -> dict[str, StoreCoverage]:
    """Coverage of every store found in ``paths`` (and the four known stores, even when empty)."""
    by_store: dict[tuple[str, str], list[SetFile]] = {store: [] for store in KNOWN_STORES}
    for path in paths:
        set_file = parse_set_file(path)
        if set_file:
            by_store.setdefault(set_file.store, []).append(set_file)
    report = {}
    for (pipeline, res), files in sorted(by_store.items()):
        cov = StoreCoverage(pipeline, res, files=len(files))
        for f in sorted(files):
            if cov.windows and f.start <= cov.windows[-1][1]:
                cov.windows[-1] = (cov.windows[-1][0], max(cov.windows[-1][1], f.end))
            else:
                if cov.windows:
                    cov.gaps.append((cov.windows[-1][1], f.start))
                cov.windows.append((f.start, f.end))
        if not files:
            cov.warnings.append("store is empty")
        elif res == "1h" and cov.windows and (cov.windows[-1][1] - cov.windows[-1][0]) < hourly_hours * 3600:
            latest = cov.windows[-1]
            cov.warnings.append(
                f"hourly store holds {(latest[1] - latest[0]) // 3600}h, less than {hourly_hours}h"
                " (etlHourlyStoreDurationHours); an in-memory store truncates backups"
            )
        if cov.gaps:
            cov.warnings.append(f"{len(cov.gaps)} gap(s) in coverage")
        report[f"{pipeline}/{res}"] = cov
    return report
