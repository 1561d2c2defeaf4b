"""The directories a restore uses next to the ETL dir, and the few commands that touch them.

For the ETL dir ``<live>`` (e.g. ``/var/configs/db/etl``; ``/proc/1/root/var/configs/db/etl``
from a debug container, where renames still happen in cost-model's filesystem) one run uses::

    <live>.restore-<token>     the staging dir: the snapshot is unpacked and checked here
    <live>.previous-<token>    the live dir as it was, kept until the post-check passes
    <live>.discarded-<token>   a failed restore's tree while the previous one is put back

They sit next to the live dir, on the same volume, so every move is a rename. ``<token>`` is the
snapshot id and a hash of the run id: a retried task or a teardown finds the same names again.
Only these names are ever removed; the live dir itself is only ever renamed.

The swap proves where the staged files are instead of inferring it: right before the renames it
creates the empty directory ``.kubecost-etl-restore-<token>`` (the *marker*) inside the staging
dir. Wherever that marker is found, that directory is this run's staged tree, and the marker's
mtime (the pod's clock) is when the swap began: anything newer in that tree was written later.
File listings see regular files only, so the marker is never backed up, checked or restored.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
from dataclasses import dataclass, field

from kubecost_etl.kube.exec import ExecError
from kubecost_etl.kube.pod_files import dir_exists
from kubecost_etl.kube.target import ExecTarget

log = logging.getLogger(__name__)
KINDS = ("restore", "previous", "discarded")
_REMOVE_ATTEMPTS = 3  # a tar cut off a moment ago may still be writing into the staging dir
_REMOVE_PAUSE_S = 1.0
_INSPECT_ATTEMPTS = 3  # another run may remove its dir between find and stat
MARKER_PREFIX = ".kubecost-etl-restore-"


@dataclass(frozen=True)
class RestoreDirs:
    live: str
    token: str

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.live.rstrip("/")) or "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.live.rstrip("/"))

    @property
    def staging(self) -> str:
        return self._sibling("restore")

    @property
    def previous(self) -> str:
        return self._sibling("previous")

    @property
    def discarded(self) -> str:
        return self._sibling("discarded")

    def _sibling(self, kind: str) -> str:
        return f"{self.live.rstrip('/')}.{kind}-{self.token}"

    @property
    def marker_name(self) -> str:
        return MARKER_PREFIX + self.token

    def marker_in(self, directory: str) -> str:
        return f"{directory.rstrip('/')}/{self.marker_name}"

    def as_dict(self) -> dict:
        return {
            "live": self.live,
            "staging": self.staging,
            "previous": self.previous,
            "discarded": self.discarded,
        }

    def manual_rollback(self, namespace: str, pod: str, container: str) -> str:
        """The commands to put the previous data back by hand, for error messages."""
        run = f"kubectl exec -n {namespace} {pod} -c {container} --"
        return (
            f"{run} mv -T {self.live} {self.discarded} ; {run} mv -T {self.previous} {self.live} ; "
            f"then {run} rm -rf {self.discarded} {self.staging}"
        )


def restore_token(snapshot_id: str, run_id: str) -> str:
    return f"{snapshot_id}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


@dataclass
class DirState:
    """What exists next to the ETL dir right now."""

    live: bool
    staging: bool
    previous: bool
    discarded: bool
    live_not_a_directory: bool = False
    other_runs: list[str] = field(default_factory=list)  # restore dirs left by other runs


def inspect(core_api, target: ExecTarget, dirs: RestoreDirs) -> DirState:
    """What lies next to the ETL dir. "Nothing" only when ``test -d`` proves even the parent absent."""
    for attempt in range(1, _INSPECT_ATTEMPTS + 1):
        try:
            out = target.exec(
                core_api,
                [
                    "find",
                    dirs.parent,
                    "-mindepth",
                    "1",
                    "-maxdepth",
                    "1",
                    "-exec",
                    "stat",
                    "-c",
                    "%F|%n",
                    "{}",
                    "+",
                ],
            ).output()
            break
        except ExecError as exc:
            if exc.exit_code is None:
                raise  # the exec failed: nothing is known
            if not dir_exists(core_api, target, dirs.parent):
                return DirState(False, False, False, False)  # not even the parent: a wiped volume
            if attempt == _INSPECT_ATTEMPTS:
                raise
            log.info(
                "listing %s failed although it exists (an entry vanished meanwhile?): %s; again",
                dirs.parent,
                exc,
            )
    kinds: dict[str, str] = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        kind, _, path = line.partition("|")
        kinds[posixpath.basename(path)] = kind
    ours = {posixpath.basename(p) for p in (dirs.staging, dirs.previous, dirs.discarded)}
    others = sorted(
        f"{dirs.parent.rstrip('/')}/{n}"
        for n in kinds
        if n not in ours and any(n.startswith(f"{dirs.name}.{k}-") for k in KINDS)
    )

    def is_dir(path: str) -> bool:
        return kinds.get(posixpath.basename(path)) == "directory"

    return DirState(
        live=is_dir(dirs.live),
        staging=is_dir(dirs.staging),
        previous=is_dir(dirs.previous),
        discarded=is_dir(dirs.discarded),
        live_not_a_directory=dirs.name in kinds and not is_dir(dirs.live),
        other_runs=others,
    )


def mark_staging(core_api, target: ExecTarget, dirs: RestoreDirs) -> int:
    """Put the marker into the staging dir (kept if an earlier try made it); return its mtime (pod clock)."""
    target.exec(core_api, ["mkdir", "-p", dirs.marker_in(dirs.staging)]).run()
    marked = marked_at(core_api, target, dirs, dirs.staging)
    if marked is None:
        raise ExecError(f"the marker {dirs.marker_in(dirs.staging)} is not there after mkdir")
    return marked


def marked_at(core_api, target: ExecTarget, dirs: RestoreDirs, directory: str) -> int | None:
    """The marker's mtime if ``directory`` holds this run's staged tree (it has the marker), else None.

    Proof comes from ``stat``'s exit status: a non-zero exit means "no marker"; an exec without a
    status raises, so the caller never mistakes a lost answer for an absence.
    """
    try:
        out = target.exec(core_api, ["stat", "-c", "%Y", dirs.marker_in(directory)]).output()
    except ExecError as exc:
        if exc.exit_code is not None and exc.exit_code != 0:
            return None
        raise
    return int(out.decode().strip())


def remove_marker(core_api, target: ExecTarget, dirs: RestoreDirs, directory: str) -> None:
    target.exec(core_api, ["rm", "-rf", dirs.marker_in(directory)]).run()


def ensure_parent(core_api, target: ExecTarget, dirs: RestoreDirs) -> None:
    target.exec(core_api, ["mkdir", "-p", dirs.parent]).run()


def owner_of(core_api, target: ExecTarget, dirs: RestoreDirs, live_exists: bool) -> tuple[int, int]:
    """uid and gid of the live dir (or of its parent when it is gone): restored files get the same."""
    out = target.exec(core_api, ["stat", "-c", "%u %g", dirs.live if live_exists else dirs.parent]).output()
    uid, gid = out.decode().split()
    return int(uid), int(gid)


def rename(core_api, target: ExecTarget, source: str, destination: str) -> None:
    """``mv -T``: a rename that never moves into an existing directory, and fails on a non-empty one."""
    log.info("rename %s -> %s in pod %s", source, destination, target.pod.name)
    target.exec(core_api, ["mv", "-T", source, destination]).run()


def remove(core_api, target: ExecTarget, dirs: RestoreDirs, path: str) -> None:
    """``rm -rf`` one of this run's own dirs (never the live dir), then check that it is gone."""
    removable = (dirs.staging, dirs.previous, dirs.discarded)
    if path not in removable:
        raise ValueError(f"refusing to remove {path!r}: only {removable} may be removed")
    complaint = ""
    for attempt in range(_REMOVE_ATTEMPTS):
        if attempt:
            time.sleep(_REMOVE_PAUSE_S)  # waiting for a writer in the pod to stop; not test timing
        try:
            target.exec(core_api, ["rm", "-rf", path]).run()
        except ExecError as exc:
            if exc.exit_code is None:
                raise  # the exec itself failed, not rm
            complaint = f" (rm: {exc})"  # e.g. "Directory not empty": something still writes into it
            log.warning("removing %s in pod %s: %s", path, target.pod.name, exc)
        state = inspect(core_api, target, dirs)
        if not {dirs.staging: state.staging, dirs.previous: state.previous, dirs.discarded: state.discarded}[
            path
        ]:
            log.info("removed %s in pod %s", path, target.pod.name)
            return
    raise ExecError(
        f"{path} in pod {target.pod.name} is still there after {_REMOVE_ATTEMPTS} removals{complaint}"
    )


def remove_stale_staging(core_api, target: ExecTarget, dirs: RestoreDirs, state: DirState) -> None:
    """Staging dirs of earlier runs hold only copies of snapshots: removing them loses nothing."""
    for path in state.other_runs:
        if posixpath.basename(path).startswith(f"{dirs.name}.restore-"):
            log.warning("removing the staging dir of an earlier restore run: %s", path)
            target.exec(core_api, ["rm", "-rf", path]).run()
