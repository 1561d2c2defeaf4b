"""Which ETL files a share bundle carries: those under ``bingen/`` whose ``[start, end)`` overlaps the window.

A file's range is read from its name: ``<start>-<end>`` or OpenCost's ``<prefix>.<start>-<end>[.<ext>]``
(unix seconds), whatever the resolution folder (``1d``, ``1h``, an old ``1w`` store, ``10m``). A file
whose name carries no range belongs to no window: it is carried only when no window is given, and listed.
Files outside ``bingen/`` are never carried (Kubecost's archives hold ``bingen/`` only; an import refuses
anything else), and listed too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from kubecost_etl.errors import Refusal
from kubecost_etl.etl.windows import DAY, ceil_to, iso

_RANGE = re.compile(r"^(?:[^/]*\.)?(\d{1,12})-(\d{1,12})(?:\.[^/.]+)?$")


class ShareRefused(Refusal, ValueError):
    """A share or import that must not go ahead; nothing was written."""


@dataclass(frozen=True)
class Candidate:
    """One file that could go into a bundle (path relative to the ETL root)."""

    path: str
    size: int
    mtime: int
    sha256: str | None = None  # known for repository sources; the pod's is computed while streaming

    @property
    def pipeline(self) -> str | None:
        parts = self.path.split("/")
        return parts[1] if len(parts) >= 4 else None

    @property
    def resolution(self) -> str | None:
        parts = self.path.split("/")
        return parts[2] if len(parts) >= 4 else None

    @property
    def range(self) -> tuple[int, int] | None:
        return file_range(self.path)


def file_range(path: str) -> tuple[int, int] | None:
    """``(start, end)`` from a set file's name, or None when the name carries no range."""
    match = _RANGE.match(path.rsplit("/", 1)[-1])
    if not match:
        return None
    start, end = int(match[1]), int(match[2])
    return (start, end) if start < end else None


def days_touched(start: int, end: int) -> set[int]:
    """Starts of the UTC days ``[start, end)`` reaches into."""
    return set(range(start - start % DAY, ceil_to(end, DAY), DAY))


@dataclass(frozen=True)
class Selection:
    files: tuple[Candidate, ...]
    unranged: tuple[str, ...] = ()  # carried although their names carry no range (no window given)
    left_out: tuple[str, ...] = field(default=())  # not carried, with the reason

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def days(self, window: tuple[int, int] | None) -> int:
        """Distinct UTC days the carried ranged files cover, inside the window when one is given."""
        found: set[int] = set()
        for f in self.files:
            if f.range is None:
                continue
            start, end = f.range
            if window:
                start, end = max(start, window[0]), min(end, window[1])
            if start < end:
                found |= days_touched(start, end)
        return len(found)


def select_files(
    candidates: Iterable[Candidate],
    window: tuple[int, int] | None,
    pipelines: Iterable[str] = (),
    resolutions: Iterable[str] = (),
    where: str = "",
) -> Selection:
    """The files of ``candidates`` a bundle carries; refuses unknown filter values and an empty selection.

    ``where`` names the source in messages (cluster and pod or snapshot).
    """
    candidates = sorted(candidates, key=lambda c: c.path)
    pipelines, resolutions = sorted(set(pipelines)), sorted(set(resolutions))
    bingen = [c for c in candidates if c.path.startswith("bingen/")]
    left_out = [f"{c.path}: not under bingen/" for c in candidates if not c.path.startswith("bingen/")]
    for name, wanted, present in (
        ("pipelines", pipelines, {c.pipeline for c in bingen if c.pipeline}),
        ("resolutions", resolutions, {c.resolution for c in bingen if c.resolution}),
    ):
        unknown = [value for value in wanted if value not in present]
        if unknown:
            raise ShareRefused(f"{where}: {name} {unknown} not found; there are {sorted(present) or 'none'}")
    chosen, unranged = [], []
    for c in bingen:
        if (pipelines and c.pipeline not in pipelines) or (resolutions and c.resolution not in resolutions):
            continue
        span = c.range
        if span is None:
            if window is None:
                chosen.append(c)
                unranged.append(c.path)
            else:
                left_out.append(f"{c.path}: no range in its name, so in no window")
            continue
        if window is None or (span[0] < window[1] and span[1] > window[0]):
            chosen.append(c)
    if not chosen:
        scope = f"window [{iso(window[0])}, {iso(window[1])})" if window else "no window"
        filters = f", pipelines {pipelines or 'all'}, resolutions {resolutions or 'all'}"
        raise ShareRefused(
            f"{where}: nothing to share: no file under bingen/ matches {scope}{filters} "
            f"({len(candidates)} file(s) looked at)"
        )
    return Selection(tuple(chosen), tuple(unranged), tuple(left_out))
