"""Listing and hashing the ETL files inside the pod, with commands busybox and GNU tools both have."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kubecost_etl.etl.layout import UnsafePathError, check_relative_path
from kubecost_etl.kube.exec import CommandNotFound, ExecError, command_batches
from kubecost_etl.kube.target import ExecTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodFile:
    path: str  # relative to the ETL root
    size: int
    mtime: int


class EtlDirMissing(ExecError):
    """The ETL directory does not exist in the pod (wrong etl_path, or Kubecost never built it)."""


LISTING_ATTEMPTS = 3  # Kubecost's retention may delete a file between find and its stat: list again


def dir_exists(core_api, target: ExecTarget, path: str) -> bool:
    """Whether ``path`` is a directory in the pod, from ``test -d``'s exit code in an exec of its own.

    Only an exit status proves anything: 0 it is there, 1 it is not; an exec that failed or lost
    its status raises (the caller retries), so an error message is never read as "absent".
    """
    try:
        target.exec(core_api, ["test", "-d", path]).run()
    except ExecError as exc:
        if exc.exit_code == 1:
            return False
        raise
    return True


def list_files(core_api, target: ExecTarget) -> tuple[list[PodFile], list[str]]:
    """All regular files under the ETL root, and the entries we refuse to carry (links, odd names).

    Raises ``EtlDirMissing`` only when ``test -d`` proves the root absent. A listing that fails while
    the root exists (a file vanished between ``find`` and ``stat``) is taken again.
    """
    root = target.etl_root.rstrip("/")
    for attempt in range(1, LISTING_ATTEMPTS + 1):
        try:
            out = target.exec(
                core_api, ["find", root, "-type", "f", "-exec", "stat", "-c", "%s %Y %n", "{}", "+"]
            ).output()
            odd = target.exec(core_api, ["find", root, "!", "-type", "f", "!", "-type", "d"]).output()
            break
        except CommandNotFound:
            raise
        except ExecError as exc:
            if exc.exit_code is None:
                raise  # the exec itself failed: nothing is known about the directory
            if not dir_exists(core_api, target, root):
                raise EtlDirMissing(f"ETL directory {root} not found in pod {target.pod.name}") from None
            if attempt == LISTING_ATTEMPTS:
                raise ExecError(
                    f"listing {root} in pod {target.pod.name} failed {attempt} times although it "
                    f"exists: {exc}",
                    exc.exit_code,
                    exc.stderr,
                ) from exc
            log.info(
                "listing %s in pod %s failed although it exists (a file vanished meanwhile?): %s; "
                "listing again",
                root,
                target.pod.name,
                exc,
            )
    files, refused = [], []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        size, mtime, name = line.split(" ", 2)
        relative = name[len(root) + 1 :] if name.startswith(root + "/") else name
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
            digests[name.lstrip("*")[len(root) + 1 :]] = digest
    missing = [p for p in paths if p not in digests]
    if missing:
        raise ExecError(f"sha256sum in pod {target.pod.name} returned no digest for {missing[:5]}")
    return digests
