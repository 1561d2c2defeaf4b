"""Listing and hashing the ETL files inside the pod, with commands busybox and GNU tools both have."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.target import ExecTarget


@dataclass(frozen=True)
class PodFile:
    path: str  # relative to the ETL root
    size: int
    mtime: int


class EtlDirMissing(ExecError):
    """The ETL directory does not exist in the pod (wrong etl_path, or Kubecost never built it)."""


def list_files(core_api, target: ExecTarget) -> tuple[list[PodFile], list[str]]:
    """All regular files under the ETL root, and the entries we refuse to carry (links, odd names)."""
    root = target.etl_root.rstrip("/")
    try:
        out = target.exec(core_api, ["find", root, "-type", "f", "-exec", "stat", "-c", "%s %Y %n", "{}", "+"]).output()
        odd = target.exec(core_api, ["find", root, "!", "-type", "f", "!", "-type", "d"]).output()
    except ExecError as exc:
        if "No such file" in str(exc) or "No such file" in exc.stderr:
            raise EtlDirMissing(f"ETL directory {root} not found in pod {target.pod.name}") from None
        raise
    files, refused = [], []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        size, mtime, name = line.split(" ", 2)
        relative = name[len(root) + 1:] if name.startswith(root + "/") else name
        try:
            files.append(PodFile(check_relative_path(relative), int(size), int(mtime)))
        except UnsafePathError as exc:
            refused.append(str(exc))
    for line in odd.decode("utf-8", "surrogateescape").splitlines():
        refused.append(f"not a regular file or directory, not carried: {line}")
    return sorted(files, key=lambda f: f.path), refused


def hash_files(core_api, target: ExecTarget, paths: Iterable[str], batch: int = 400) -> dict[str, str]:
    """sha256 of each file, computed in the pod (reads the files there, moves only the digests)."""
    root = target.etl_root.rstrip("/")
    paths = list(paths)
    digests: dict[str, str] = {}
    for chunk in command_batches(["sha256sum"], [f"{root}/{p}" for p in paths], max_count=batch):
        out = target.exec(core_api, ["sha256sum", *chunk]).output()
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            digest, name = line.split(None, 1)
            digests[name.lstrip("*")[len(root) + 1:]] = digest
    missing = [p for p in paths if p not in digests]
    if missing:
        raise ExecError(f"sha256sum in pod {target.pod.name} returned no digest for {missing[:5]}")
    return digests
