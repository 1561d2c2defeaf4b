"""Putting checked staged files in place, and undoing it: every step is a rename or a no-clobber move.

``replace``: the marker goes into the staging dir (see ``pod_dirs``), then ``<live>`` ->
``<live>.previous-<token>`` and staging -> ``<live>``. Between the two renames the ETL dir is
briefly absent, never half-written. The previous dir is kept until the post-check passes. A swap
(first try or retry) is "done" only when the live dir holds this run's marker: never because the
staging dir is gone. An exec whose status was lost is followed by a look at what really happened;
a failed second rename puts the previous dir back and keeps the staged files for the retry.

``fill-missing``: a staged directory the pod lacks entirely is moved in as a whole; otherwise each
staged file is moved into its existing directory with ``mv -n`` (never overwriting). A file that
appeared in the pod meanwhile stays in staging and is reported; one that could be moved but was
not fails the swap. Nothing in the live dir is ever removed or rewritten; a failure afterwards
leaves the added files (verified copies of files the pod lacked) and removes only the staging dir.

``roll_back`` puts the previous dir back (the tree in its place goes to ``<live>.discarded-<token>``
first) and removes only what holds copies of the snapshot; ``finish`` removes the previous dir
after a passed post-check, and only when the live dir is proven to be the restored tree.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from dataclasses import dataclass

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.pod_files import list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore import pod_dirs
from kubecost_etl.restore.plan import scan_tree
from kubecost_etl.restore.pod_dirs import RestoreDirs
from kubecost_etl.transfer.tar_stream import parent_directories

log = logging.getLogger(__name__)
_MOVE_PASSES = 3  # a directory Kubecost creates meanwhile turns a directory move into file moves


class SwapFailed(KubecostEtlError, RuntimeError):
    pass


@dataclass(frozen=True)
class SwapResult:
    """What the swap task hands on (XCom: ``as_dict``). ``swapped_at``: the pod's clock (epoch seconds)
    when the swap began; a file in the live dir newer than that was written after the swap."""

    outcome: str
    pod: dict
    swapped_at: int | None = None
    previous: str | None = None
    moved: int = 0
    skipped: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "skipped": list(self.skipped)}

    @classmethod
    def from_dict(cls, data: dict) -> SwapResult:
        return cls(
            outcome=data["outcome"],
            pod=dict(data["pod"]),
            swapped_at=data.get("swapped_at"),
            previous=data.get("previous"),
            moved=int(data.get("moved", 0)),
            skipped=tuple(data.get("skipped", ())),
        )


def swap_replace(core_api, target: ExecTarget, dirs: RestoreDirs) -> SwapResult:
    marked = pod_dirs.marked_at(core_api, target, dirs, dirs.live)
    state = pod_dirs.inspect(core_api, target, dirs)
    if marked is not None:  # a retry after the renames went through (whatever their exec statuses said)
        return _replaced("already swapped", target, dirs, marked, state.previous)
    if state.live_not_a_directory:
        raise SwapFailed(f"{dirs.live} exists but is not a directory; nothing was swapped")
    if not state.staging:
        raise SwapFailed(
            f"the staging dir {dirs.staging} is gone and {dirs.live} does not hold this run's staged "
            "files (no marker): nothing was swapped; the teardown puts back what is needed"
        )
    if state.live and state.previous:
        raise SwapFailed(
            f"both {dirs.live} and {dirs.previous} exist next to the staged files, and {dirs.live} is "
            "not the staged tree; not swapping over either"
        )
    marked = pod_dirs.mark_staging(core_api, target, dirs)
    if state.live:
        _rename_checked(core_api, target, dirs, dirs.live, dirs.previous)
    try:
        pod_dirs.rename(core_api, target, dirs.staging, dirs.live)
    except ExecError as exc:
        if pod_dirs.marked_at(core_api, target, dirs, dirs.live) is None:
            undone = _undo_first_rename(core_api, target, dirs)
            raise SwapFailed(
                f"moving the staged files into {dirs.live} failed ({exc}); {undone}; the staged "
                f"files are kept in {dirs.staging} for the retry"
            ) from exc
        log.info("the rename into %s ran although its exec reported %s", dirs.live, exc)
    return _replaced("swapped", target, dirs, marked, state.live or state.previous)


def _replaced(
    outcome: str, target: ExecTarget, dirs: RestoreDirs, marked: int, previous_kept: bool
) -> SwapResult:
    log.info(
        "%s: %s is now this run's staged tree (proven by its marker; swap began at %d on the pod's clock)%s",
        outcome,
        dirs.live,
        marked,
        f"; the previous data is kept in {dirs.previous}"
        if previous_kept
        else " (there was no previous ETL dir)",
    )
    return SwapResult(
        outcome, target.pod.as_dict(), swapped_at=marked, previous=dirs.previous if previous_kept else None
    )


def _rename_checked(core_api, target: ExecTarget, dirs: RestoreDirs, source: str, destination: str) -> None:
    """A rename whose exec status may be lost: then what exists tells whether it ran."""
    try:
        pod_dirs.rename(core_api, target, source, destination)
    except ExecError as exc:
        if exc.exit_code is not None:
            raise
        state = pod_dirs.inspect(core_api, target, dirs)
        after = {dirs.live: state.live, dirs.previous: state.previous, dirs.discarded: state.discarded}
        if after.get(destination) and not after.get(source):
            log.info("the rename %s -> %s ran although its exec reported %s", source, destination, exc)
            return
        raise


def _undo_first_rename(core_api, target: ExecTarget, dirs: RestoreDirs) -> str:
    """After a failed second rename: put the previous dir back so the pod is never left without its data."""
    try:
        state = pod_dirs.inspect(core_api, target, dirs)
        if state.previous and not state.live:
            _rename_checked(core_api, target, dirs, dirs.previous, dirs.live)
            return f"put {dirs.previous} back into {dirs.live}"
        return "nothing to undo"
    except ExecError as exc:
        log.error(
            "could not put %s back after the failed swap: %s (the retry or the teardown will)",
            dirs.previous,
            exc,
        )
        return f"{dirs.previous} could not be put back yet ({exc})"


def put_back_interrupted(core_api, target: ExecTarget, dirs: RestoreDirs) -> str | None:
    """An earlier restore that stopped between its two renames (its task process killed) left no live
    dir and its ``<live>.previous-<token>``: put that back before this run looks at the pod (under the
    cluster's lease, so that run is over). Returns the dir put back, or None when the live dir exists.
    A retry after a lost exec status finds the live dir back and does nothing."""
    state = pod_dirs.inspect(core_api, target, dirs)
    if state.live:
        return None
    earlier = [p for p in state.other_runs if posixpath.basename(p).startswith(f"{dirs.name}.previous-")]
    if len(earlier) != 1:
        if earlier:
            raise SwapFailed(
                f"{dirs.live} is missing and several earlier restores left their previous data "
                f"{earlier}: put the right one back by hand (mv -T <dir> {dirs.live})"
            )
        return None
    log.warning(
        "%s is missing: putting back %s, left by a restore that stopped between its two renames",
        dirs.live,
        earlier[0],
    )
    pod_dirs.rename(core_api, target, earlier[0], dirs.live)
    return earlier[0]


def move_missing(
    core_api, target: ExecTarget, dirs: RestoreDirs, paths: list[str], batch: int = 400
) -> SwapResult:
    """Move the staged ``paths`` that the pod still lacks into the live dir, never overwriting."""

    def result(outcome: str, skipped: list[str], swapped_at: int | None) -> SwapResult:
        return SwapResult(
            outcome,
            target.pod.as_dict(),
            swapped_at=swapped_at,
            moved=len(paths) - len(skipped),
            skipped=tuple(skipped),
        )

    if not paths:
        return result("nothing to add", [], None)
    state = pod_dirs.inspect(core_api, target, dirs)
    if not state.staging:
        marked = pod_dirs.marked_at(core_api, target, dirs, dirs.live) if state.live else None
        if marked is not None:
            return result("moved in whole", [], marked)  # a retry after the rename went through
        raise SwapFailed(f"the staging dir {dirs.staging} is gone; run the stage task again")
    marked = pod_dirs.mark_staging(core_api, target, dirs)
    if not state.live:  # the pod had nothing: all of it is missing
        try:
            pod_dirs.rename(core_api, target, dirs.staging, dirs.live)
        except ExecError:
            if pod_dirs.marked_at(core_api, target, dirs, dirs.live) is None:
                raise
        return result("moved in whole", [], marked)
    staged_target = dataclasses.replace(target, etl_root=dirs.staging)
    wanted = set(paths)
    for attempt in range(_MOVE_PASSES + 1):
        left = sorted(f.path for f in list_files(core_api, staged_target)[0] if f.path in wanted)
        tree = scan_tree(core_api, target)
        moves = plan_moves(left, {f.path for f in tree.files}, tree.directories)
        if not moves:
            break  # the pod now has what is left (or a file where its directory would go)
        if attempt == _MOVE_PASSES:
            # Not a file Kubecost wrote meanwhile: the move itself failed. Never report it as skipped.
            unmoved = sorted(s for sources in moves.values() for s in sources)
            raise SwapFailed(
                f"{len(unmoved)} staged file(s) or dir(s) could not be moved into {dirs.live} "
                f"after {_MOVE_PASSES} passes: {unmoved[:10]}"
            )
        _run_moves(core_api, target, dirs, moves, batch)
    for path in left:
        log.warning("not added: %s appeared in the pod meanwhile (left as it is)", path)
    log.info("added %d file(s) to %s", len(paths) - len(left), dirs.live)
    return result("moved", left, marked)


def plan_moves(staged: list[str], live_files: set[str], live_dirs: set[str]) -> dict[str, list[str]]:
    """Destination dir (relative, '' = root) -> staged entries (relative) to move into it.

    A staged file whose directory the pod lacks moves with its highest missing directory; a path
    that exists in the pod, or whose parent is a file there, is not moved.
    """
    moves: dict[str, set[str]] = {}
    for path in staged:
        if path in live_files or path in live_dirs:
            continue
        parents = parent_directories([path])
        if any(p in live_files for p in parents):
            continue
        missing = next((p for p in parents if p not in live_dirs), None)
        source = missing or path
        moves.setdefault(posixpath.dirname(source), set()).add(source)
    return {dest: sorted(sources) for dest, sources in sorted(moves.items())}


def _run_moves(
    core_api, target: ExecTarget, dirs: RestoreDirs, moves: dict[str, list[str]], batch: int
) -> None:
    for destination, sources in moves.items():
        into = f"{dirs.live}/{destination}/" if destination else f"{dirs.live}/"
        staged = [f"{dirs.staging}/{s}" for s in sources]
        # Split by URL bytes too: a proxy in front of the API server may cap the request line.
        for chunk in command_batches(["mv", "-n", into], staged, max_count=batch):
            try:
                target.exec(core_api, ["mv", "-n", *chunk, into]).run()
            except ExecError as exc:
                # Some mv releases exit 1 when -n skips a file; the next pass sees what really moved.
                log.warning("mv -n into %s reported: %s", into, exc)


def roll_back(core_api, target: ExecTarget, dirs: RestoreDirs) -> dict:
    """Put ``<live>.previous-<token>`` back as the live dir; remove only what holds copies of the snapshot.

    Whatever sits in the live dir's place is moved aside to the discarded dir, never deleted unless
    its marker proves it is this run's staged tree (a copy of the snapshot). Returns
    ``{"put_back": whether a previous dir was put back, "actions": [...]}``.
    """
    state = pod_dirs.inspect(core_api, target, dirs)
    actions: list[str] = []
    if state.previous:
        if state.live:
            if state.discarded:  # an earlier roll back stopped after moving a tree aside
                _remove_if_ours(core_api, target, dirs, dirs.discarded, actions, required=True)
            ours = pod_dirs.marked_at(core_api, target, dirs, dirs.live) is not None
            _rename_checked(core_api, target, dirs, dirs.live, dirs.discarded)
            what = "restored" if ours else "unknown (not this run's)"
            actions.append(f"moved the {what} {dirs.live} aside to {dirs.discarded}")
        _rename_checked(core_api, target, dirs, dirs.previous, dirs.live)
        actions.append(f"put the previous data back into {dirs.live}")
    actions += _clean_up(core_api, target, dirs, remove_previous=False)
    return {"put_back": state.previous, "actions": actions}


def finish(core_api, target: ExecTarget, dirs: RestoreDirs) -> list[str]:
    """After a passed post-check: remove the staging dir, the previous dir and the marker.

    The previous dir goes only when the live dir holds this run's marker (it is the restored tree);
    otherwise it is kept and said so.
    """
    return _clean_up(core_api, target, dirs, remove_previous=True)


def _clean_up(core_api, target: ExecTarget, dirs: RestoreDirs, remove_previous: bool) -> list[str]:
    state = pod_dirs.inspect(core_api, target, dirs)
    actions = []
    if state.staging:  # holds only (part of) the snapshot
        pod_dirs.remove(core_api, target, dirs, dirs.staging)
        actions.append(f"removed {dirs.staging}")
    if state.discarded:
        _remove_if_ours(core_api, target, dirs, dirs.discarded, actions)
    live_is_ours = state.live and pod_dirs.marked_at(core_api, target, dirs, dirs.live) is not None
    if state.previous and remove_previous:
        if live_is_ours:
            pod_dirs.remove(core_api, target, dirs, dirs.previous)
            actions.append(f"removed {dirs.previous}")
        else:
            log.error(
                "%s is not proven to be the restored tree (no marker): keeping %s", dirs.live, dirs.previous
            )
            actions.append(f"kept {dirs.previous}: {dirs.live} is not proven to hold the restored files")
    if live_is_ours and (remove_previous or not state.previous):
        pod_dirs.remove_marker(core_api, target, dirs, dirs.live)
    return actions


def _remove_if_ours(
    core_api, target: ExecTarget, dirs: RestoreDirs, path: str, actions: list[str], required: bool = False
) -> None:
    if pod_dirs.marked_at(core_api, target, dirs, path) is not None:
        pod_dirs.remove(core_api, target, dirs, path)
        actions.append(f"removed {path} (this run's restored copy of the snapshot)")
        return
    message = f"{path} is not this run's staged tree (no marker): kept; look at it and remove it by hand"
    if required:
        raise SwapFailed(message)
    log.warning("%s", message)
    actions.append(f"kept {path}")
