"""Object keys of the federated (and durable) layouts, from paths relative to the pod's ETL root.

Kubecost's Aggregator reads ``[<prefix>/]federated/<cluster id>/etl/bingen/<pipeline>/<resolution>/<file>``
(OpenCost's exporter: root ``federated``, base dir ``etl/bingen``); Kubecost Enterprise's durable
backup writes ``[<prefix>/]etl/bingen/...``. Whatever sits under the ETL root's ``bingen/`` is carried
with its relative path (extra pipelines, ``1w``/``10m`` stores, prefixed names); nothing else is,
because neither layout has a place for it. The store's own prefix is the ``[<prefix>/]`` part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubecost_etl.etl.layout import check_relative_path

from .settings import Layout

BINGEN = "bingen/"
OWNER_MARKER = "kubecost-etl-owner.json"
INDEX_OBJECT = "kubecost-etl-index.json"
# <start>-<end>, optionally <prefix>.<start>-<end> and/or a trailing .<ext>; unix seconds.
_FILE_NAME = re.compile(
    r"^(?:(?P<prefix>[A-Za-z0-9_-]+)\.)?(?P<start>\d+)-(?P<end>\d+)(?:\.(?P<ext>[A-Za-z0-9]+))?$"
)
META_SHA256 = "kcetlsha256"  # object metadata names: lowercase letters and digits only (portable)
META_MTIME = "kcetlmtime"


@dataclass(frozen=True)
class FederatedLayout:
    layout: Layout
    cluster_id: str

    @property
    def root(self) -> str:
        """The cluster's own part of the bucket: ``federated/<id>/`` (or the prefix itself for durable)."""
        return f"federated/{self.cluster_id}/" if self.layout is Layout.FEDERATED else ""

    @property
    def data_prefix(self) -> str:
        return f"{self.root}etl/{BINGEN}"

    @property
    def owner_key(self) -> str:
        return f"{self.root}{OWNER_MARKER}" if self.root else f"etl/{OWNER_MARKER}"

    @property
    def index_key(self) -> str:
        return f"{self.root}{INDEX_OBJECT}" if self.root else f"etl/{INDEX_OBJECT}"

    def key(self, relative_path: str) -> str:
        """The object key of a file at ``relative_path`` under the ETL root (which must be under bingen/)."""
        check_relative_path(relative_path)
        if not carried(relative_path):
            raise ValueError(
                f"{relative_path!r} is not under the ETL root's bingen/: it has no federated key"
            )
        return f"{self.root}etl/{relative_path}"

    def relative_path(self, key: str) -> str | None:
        """The ETL-root-relative path of a data key; None for keys outside the data prefix."""
        return f"{BINGEN}{key[len(self.data_prefix) :]}" if key.startswith(self.data_prefix) else None

    def describe(self) -> str:
        return f"{self.data_prefix}..."


def carried(relative_path: str) -> bool:
    """Whether a file is mirrored: everything under ``bingen/`` (and nothing else)."""
    return relative_path.startswith(BINGEN) and len(relative_path) > len(BINGEN)


@dataclass(frozen=True)
class FileWindow:
    pipeline: str
    resolution: str
    start: int
    end: int


def file_window(relative_path: str) -> FileWindow | None:
    """Pipeline, resolution and time window of ``bingen/<pipeline>/<resolution>/<name>``; None if not one."""
    parts = relative_path.split("/")
    if len(parts) != 4 or parts[0] != "bingen":
        return None
    match = _FILE_NAME.match(parts[3])
    if not match:
        return None
    start, end = int(match["start"]), int(match["end"])
    if end <= start:
        return None
    return FileWindow(parts[1], parts[2], start, end)


def coverage_summary(relative_paths) -> dict[str, dict[str, dict]]:
    """Per pipeline and resolution: file count, and the distinct days and hours the files cover."""
    summary: dict[str, dict[str, dict]] = {}
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for path in relative_paths:
        window = file_window(path)
        if window is None:
            continue
        spans.setdefault((window.pipeline, window.resolution), []).append((window.start, window.end))
    for (pipeline, resolution), windows in sorted(spans.items()):
        days = {day for s, e in windows for day in range(s // 86400, (e - 1) // 86400 + 1)}
        hours = {hour for s, e in windows for hour in range(s // 3600, (e - 1) // 3600 + 1)}
        summary.setdefault(pipeline, {})[resolution] = {
            "files": len(windows),
            "days": len(days),
            "hours": len(hours),
            "first": min(s for s, _ in windows),
            "last": max(e for _, e in windows),
        }
    return summary
