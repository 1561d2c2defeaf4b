"""What a restore would change in the pod: files added, replaced, removed, left alone.

``replace`` makes the ETL dir exactly the snapshot; ``fill-missing`` writes only files the pod
lacks and touches nothing that exists. Files of equal size are told apart by sha256 computed in
the pod when it has ``sha256sum``; without it, by size and mtime (and the plan says so).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.kube.exec import CommandNotFound
from kubecost_etl.kube.pod_files import EtlDirMissing, PodFile, hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore.modes import FILL_MISSING, MODES, REPLACE
from kubecost_etl.snapshots.pinned import RestoreRefused
from kubecost_etl.snapshots.repository import FileEntry
from kubecost_etl.transfer.tar_stream import parent_directories

log = logging.getLogger(__name__)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise RestoreRefused(f"unknown mode {mode!r}; expected one of {MODES}")
    return mode


@dataclass
class PodTree:
    """The ETL dir as the pod has it: regular files, directories, and everything else."""

    exists: bool
    files: list[PodFile] = field(default_factory=list)
    directories: set[str] = field(default_factory=set)  # relative paths
    others: list[str] = field(default_factory=list)  # relative paths of links, sockets, fifos, devices
    refused: list[str] = field(default_factory=list)  # why entries are not carried (odd types, odd names)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def scan_tree(core_api, target: ExecTarget) -> PodTree:
    try:
        files, refused = list_files(core_api, target)
    except EtlDirMissing:
        return PodTree(exists=False)
    directories = _find_relative(core_api, target, ["-type", "d"])
    others = _find_relative(core_api, target, ["!", "-type", "f", "!", "-type", "d"])
    return PodTree(exists=True, files=files, directories=directories, others=sorted(others), refused=refused)


def _find_relative(core_api, target: ExecTarget, tests: list[str]) -> set[str]:
    root = target.etl_root.rstrip("/")
    out = target.exec(core_api, ["find", root, "-mindepth", "1", *tests]).output()
    return {
        line[len(root) + 1 :]
        for line in out.decode("utf-8", "surrogateescape").splitlines()
        if line.startswith(root + "/")
    }


def pod_digests(core_api, target: ExecTarget, paths: list[str], batch: int) -> dict[str, str] | None:
    """sha256 of the given files in the pod; None when the pod has no ``sha256sum``."""
    if not paths:
        return {}
    try:
        return hash_files(core_api, target, paths, batch)
    except CommandNotFound:
        log.warning(
            "pod %s has no sha256sum: files of equal size are compared by mtime only", target.pod.name
        )
        return None


@dataclass
class RestorePlan:
    mode: str
    snapshot_id: str
    live_exists: bool
    add: list[dict] = field(default_factory=list)  # {path, size}
    replace: list[dict] = field(default_factory=list)  # {path, size, pod_size}
    remove: list[dict] = field(default_factory=list)  # {path, size}; replace mode only
    keep: list[dict] = field(default_factory=list)  # fill-missing: {path, size, pod_size, differs}
    blocked: list[dict] = field(default_factory=list)  # fill-missing: {path, reason}
    dropped: list[str] = field(
        default_factory=list
    )  # replace: entries never carried (links, odd names) go away
    unchanged: int = 0
    compared_by: str = "sha256"
    pod_files: int = 0
    pod_bytes: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        return {
            "mode": self.mode,
            "snapshot_id": self.snapshot_id,
            "live_exists": self.live_exists,
            "add": len(self.add),
            "add_bytes": sum(f["size"] for f in self.add),
            "replace": len(self.replace),
            "replace_bytes": sum(f["size"] for f in self.replace),
            "remove": len(self.remove),
            "remove_bytes": sum(f["size"] for f in self.remove),
            "keep": len(self.keep),
            "keep_differing": sum(1 for f in self.keep if f["differs"]),
            "blocked": len(self.blocked),
            "dropped": len(self.dropped),
            "unchanged": self.unchanged,
            "compared_by": self.compared_by,
            "pod_files": self.pod_files,
            "pod_bytes": self.pod_bytes,
        }

    def lines(self) -> list[str]:
        """One line per change, for the log: exactly what would happen to the pod's ETL dir.

        Files left as they are (identical, or kept by fill-missing) are only counted, except those
        that fill-missing keeps although they differ from the snapshot.
        """
        out = [f"add      {f['path']} ({f['size']} bytes)" for f in self.add]
        out += [f"replace  {f['path']} ({f['pod_size']} -> {f['size']} bytes)" for f in self.replace]
        out += [f"remove   {f['path']} ({f['size']} bytes)" for f in self.remove]
        out += [f"remove   {reason}" for reason in self.dropped]
        out += [
            f"keep     {f['path']} (differs from the snapshot; exists in the pod, so left as it is)"
            for f in self.keep
            if f["differs"]
        ]
        out += [f"skip     {f['path']} ({f['reason']})" for f in self.blocked]
        return out


def plan_restore(
    mode: str, snapshot_id: str, files: list[FileEntry], tree: PodTree, digests: dict[str, str] | None
) -> RestorePlan:
    """Compare the snapshot with the pod. ``digests``: sha256 of pod files of the same size, or None."""
    check_mode(mode)
    pod = {f.path: f for f in tree.files}
    plan = RestorePlan(
        mode,
        snapshot_id,
        tree.exists,
        compared_by="sha256" if digests is not None else "size+mtime",
        pod_files=len(tree.files),
        pod_bytes=tree.total_bytes,
    )
    if mode == FILL_MISSING:
        _refuse_odd_entries_on_paths(files, tree)
    for entry in files:
        current = pod.get(entry.path)
        if current is None:
            reason = _blocked_reason(entry.path, tree, pod) if mode == FILL_MISSING else None
            if reason:
                plan.blocked.append({"path": entry.path, "reason": reason})
            else:
                plan.add.append({"path": entry.path, "size": entry.size})
            continue
        same = _same_content(entry, current, digests)
        if mode == FILL_MISSING:
            plan.keep.append(
                {"path": entry.path, "size": entry.size, "pod_size": current.size, "differs": not same}
            )
        elif same:
            plan.unchanged += 1
        else:
            plan.replace.append({"path": entry.path, "size": entry.size, "pod_size": current.size})
    if mode == REPLACE:
        wanted = {e.path for e in files}
        plan.remove = [{"path": f.path, "size": f.size} for f in tree.files if f.path not in wanted]
        plan.dropped = list(tree.refused)
    return plan


def same_size_paths(files: list[FileEntry], tree: PodTree) -> list[str]:
    """Pod files whose size equals the snapshot's: only their content needs hashing to compare."""
    pod = {f.path: f.size for f in tree.files}
    return [e.path for e in files if pod.get(e.path) == e.size]


def _same_content(entry: FileEntry, current: PodFile, digests: dict[str, str] | None) -> bool:
    if current.size != entry.size:
        return False
    if digests is not None:
        return digests.get(entry.path) == entry.sha256
    return current.mtime == entry.mtime


def _blocked_reason(path: str, tree: PodTree, pod: dict[str, PodFile]) -> str | None:
    if path in tree.directories:
        return "the pod has a directory there"
    clash = next((d for d in parent_directories([path]) if d in pod), None)
    return f"the pod has a file at {clash}" if clash else None


def _refuse_odd_entries_on_paths(files: list[FileEntry], tree: PodTree) -> None:
    """A link in the live dir on the way to a file we add could redirect the write: refuse."""
    odd = set()
    for entry in tree.others:
        try:
            odd.add(check_relative_path(entry))
        except UnsafePathError:
            continue  # a refused name (not a path we would ever write through)
    for entry in files:
        on_path = [p for p in [*parent_directories([entry.path]), entry.path] if p in odd]
        if on_path:
            raise RestoreRefused(
                f"fill-missing refused: {on_path[0]!r} in the pod's ETL dir is a link or special "
                f"file on the way to {entry.path!r}; remove it or use mode replace"
            )
