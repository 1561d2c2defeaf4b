"""How a simulated container's filesystem maps onto host folders.

Every container gets a private scratch folder standing for its ``/`` (wiped when the pod is
replaced). Volume mounts map a pod path onto a shared host folder: the cost-model container
sees the ETL data through ``/var/configs/db`` -> ``ETL_DIR.parent``, so ``/var/configs/db/etl`` is
the ``--etl-dir`` folder and a staging folder next to it lands next to it on the host.
An ephemeral container started with ``--target`` also sees the target container's filesystem
under ``/proc/1/root`` (it shares the target's process namespace, and PID 1 is the target).

Commands only ever reach the host through :meth:`ContainerFS.host_path`, which refuses any
path whose real location (after following symlinks) leaves the folder it was mapped to.
Pod paths are normalised lexically first, so ``..`` can climb to the pod's ``/`` but never
above a mapped folder on the host.
"""

from __future__ import annotations

import errno
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

PROCESS_ROOT = "/proc/1/root"


class PathRefused(PermissionError):
    """The path would leave the host folder its pod path maps to (``..``/symlink escape)."""

    def __init__(self, pod_path: str):
        super().__init__(errno.EACCES, os.strerror(errno.EACCES), pod_path)


@dataclass(frozen=True)
class _Location:
    host_root: Path  # the real (symlink-free) host folder the path lives under
    host: Path
    is_mount_point: bool  # the pod path is a mount point (or "/"): it cannot be removed or renamed


def normalize(path: str, cwd: str = "/") -> str:
    """Absolute, lexically normalised pod path (``..`` at ``/`` stays at ``/`` as in POSIX)."""
    joined = posixpath.normpath(posixpath.join(cwd, path))
    return "/" + joined.lstrip("/")


class ContainerFS:
    """The filesystem one container sees.

    ``root`` stands for ``/``; ``mounts`` maps pod paths to host folders; ``process_root`` is the
    filesystem shown under ``/proc/1/root`` (an ephemeral container's target), if any.
    """

    def __init__(
        self, root: Path, mounts: dict[str, Path] | None = None, process_root: ContainerFS | None = None
    ):
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.process_root = process_root
        self._mounts: list[tuple[str, Path]] = []
        for mount_point, host_dir in (mounts or {}).items():
            host_dir.mkdir(parents=True, exist_ok=True)
            self._mounts.append((normalize(mount_point), Path(os.path.realpath(host_dir))))
        self._mounts.sort(key=lambda item: len(item[0]), reverse=True)  # longest prefix wins
        # Empty placeholders so that listing a parent shows the mount points, as in a real container.
        placeholders = ["/tmp"] + [mp for mp, _ in self._mounts]
        if process_root is not None:
            placeholders.append(PROCESS_ROOT)
        for placeholder in placeholders:
            (self.root / placeholder.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def _locate(self, pod_path: str) -> _Location:
        if self.process_root is not None and (
            pod_path == PROCESS_ROOT or pod_path.startswith(PROCESS_ROOT + "/")
        ):
            return self.process_root._locate(normalize(pod_path[len(PROCESS_ROOT) :] or "/"))
        for mount_point, host_dir in self._mounts:
            if pod_path == mount_point or pod_path.startswith(mount_point + "/"):
                relative = pod_path[len(mount_point) :].lstrip("/")
                return _Location(host_dir, host_dir / relative, relative == "")
        relative = pod_path.lstrip("/")
        return _Location(self.root, self.root / relative, relative == "")

    def host_path(self, pod_path: str, follow_symlinks: bool = True, cwd: str = "/") -> Path:
        """The host path for a pod path (relative to ``cwd``); raises :class:`PathRefused` on escape.

        With ``follow_symlinks=False`` only the parent folders are resolved, so a symlink
        itself can be inspected (``lstat``), archived or removed.
        """
        pod_path = normalize(pod_path, cwd)
        location = self._locate(pod_path)
        if location.host == location.host_root:
            return location.host
        if follow_symlinks:
            real = os.path.realpath(location.host)
        else:
            real = os.path.join(os.path.realpath(location.host.parent), location.host.name)
        if not _within(real, location.host_root):
            raise PathRefused(pod_path)
        return Path(real)

    def is_mount_point(self, pod_path: str) -> bool:
        return self._locate(normalize(pod_path)).is_mount_point

    def check_removable(self, pod_path: str) -> None:
        """Mount points (and ``/``) cannot be removed or renamed: EBUSY, as in a real container."""
        if self.is_mount_point(pod_path):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), pod_path)

    def symlink_stays_inside(self, link_pod_path: str, target: str) -> bool:
        """Whether a symlink at ``link_pod_path`` pointing to ``target`` resolves inside its folder.

        Absolute targets are refused: on the host they would point at host paths.
        """
        if posixpath.isabs(target):
            return False
        location = self._locate(normalize(link_pod_path))
        return _within(os.path.realpath(os.path.join(location.host.parent, target)), location.host_root)


def _within(real: str, root: Path) -> bool:
    """Whether a symlink-free host path is ``root`` itself or lies below it."""
    return real == str(root) or real.startswith(f"{root}{os.sep}")
