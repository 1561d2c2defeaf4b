"""Putting checked staged files in place, and undoing it: every step is a rename or a no-clobber move.

``replace``: ``<live>`` -> ``<live>.previous-<token>``, then staging -> ``<live>``. Between the
two renames the ETL dir is briefly absent, never half-written. The previous dir is kept until the
post-check passes. Each step looks at what exists first, so a retried or resumed swap continues
where the last one stopped.

``fill-missing``: a staged directory the pod lacks entirely is moved in as a whole; otherwise each
staged file is moved into its existing directory with ``mv -n`` (never overwriting). A file that
appeared in the pod meanwhile stays in staging and is reported; one that could be moved but was
not fails the swap. Nothing in the live dir is ever removed or rewritten; a failure afterwards
leaves the added files (verified copies of files the pod lacked) and removes only the staging dir.

``roll_back`` puts the previous dir back (the failed tree goes to ``<live>.discarded-<token>``
first) and removes this run's other dirs; ``finish`` removes them after a passed post-check.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from datetime import UTC, datetime

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


def swap_replace(core_api, target: ExecTarget, dirs: RestoreDirs) -> dict:
    state = pod_dirs.inspect(core_api, target, dirs)
    if state.live_not_a_directory:
        raise SwapFailed(f"{dirs.live} exists but is not a directory; nothing was swapped")
    swapped_at = datetime.now(UTC).isoformat()
    if state.staging:
        if state.live and not state.previous:
            pod_dirs.rename(core_api, target, dirs.live, dirs.previous)
        elif state.live:
            raise SwapFailed(f"both {dirs.live} and {dirs.previous} exist next to the staged files; "
                             "not swapping over either")
        try:
            pod_dirs.rename(core_api, target, dirs.staging, dirs.live)
        except ExecError as exc:
            undone = roll_back(core_api, target, dirs)
            raise SwapFailed(f"moving the staged files into {dirs.live} failed ({exc}); "
                             f"undone: {undone['actions']}") from exc
        outcome = "swapped"
    elif state.live:
        outcome = "already swapped"  # a retry after the renames went through
    else:
        raise SwapFailed(f"neither {dirs.staging} nor {dirs.live} exists in pod {target.pod.name}")
    # The previous dir was there already (a resumed swap), or the live dir was just renamed to it.
    previous_kept = state.previous or (state.staging and state.live)
    log.info("%s: %s is now the snapshot%s", outcome, dirs.live,
             f"; the previous data is kept in {dirs.previous}" if previous_kept else " (there was no previous ETL dir)")
    return {"outcome": outcome, "previous": dirs.previous if previous_kept else None, "swapped_at": swapped_at,
            "pod": target.pod.as_dict()}


def move_missing(core_api, target: ExecTarget, dirs: RestoreDirs, paths: list[str], batch: int = 400) -> dict:
    """Move the staged ``paths`` that the pod still lacks into the live dir, never overwriting."""
    swapped_at = datetime.now(UTC).isoformat()

    def result(outcome: str, skipped: list[str]) -> dict:
        return {"outcome": outcome, "moved": len(paths) - len(skipped), "skipped": skipped,
                "swapped_at": swapped_at, "pod": target.pod.as_dict()}

    if not paths:
        return result("nothing to add", [])
    state = pod_dirs.inspect(core_api, target, dirs)
    if not state.staging:
        raise SwapFailed(f"the staging dir {dirs.staging} is gone; run the stage task again")
    if not state.live:
        pod_dirs.rename(core_api, target, dirs.staging, dirs.live)  # the pod had nothing: all of it is missing
        return result("moved in whole", [])
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
            raise SwapFailed(f"{len(unmoved)} staged file(s) or dir(s) could not be moved into {dirs.live} "
                             f"after {_MOVE_PASSES} passes: {unmoved[:10]}")
        _run_moves(core_api, target, dirs, moves, batch)
    for path in left:
        log.warning("not added: %s appeared in the pod meanwhile (left as it is)", path)
    log.info("added %d file(s) to %s", len(paths) - len(left), dirs.live)
    return result("moved", left)


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


def _run_moves(core_api, target: ExecTarget, dirs: RestoreDirs, moves: dict[str, list[str]], batch: int) -> None:
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
    """Put ``<live>.previous-<token>`` back as the live dir and remove this run's other dirs.

    Returns ``{"put_back": whether a previous dir was put back, "actions": [...]}``.
    """
    state = pod_dirs.inspect(core_api, target, dirs)
    actions = []
    if state.previous:
        if state.live:
            if state.discarded:  # an earlier roll back stopped after moving a tree aside
                pod_dirs.remove(core_api, target, dirs, dirs.discarded)
            pod_dirs.rename(core_api, target, dirs.live, dirs.discarded)
            actions.append(f"moved the restored {dirs.live} aside")
        pod_dirs.rename(core_api, target, dirs.previous, dirs.live)
        actions.append(f"put the previous data back into {dirs.live}")
    actions += finish(core_api, target, dirs)
    return {"put_back": state.previous, "actions": actions}


def finish(core_api, target: ExecTarget, dirs: RestoreDirs) -> list[str]:
    """Remove this run's staging, previous and discarded dirs, whichever exist."""
    state = pod_dirs.inspect(core_api, target, dirs)
    removed = []
    for path, exists in ((dirs.staging, state.staging), (dirs.previous, state.previous),
                         (dirs.discarded, state.discarded)):
        if exists:
            pod_dirs.remove(core_api, target, dirs, path)
            removed.append(f"removed {path}")
    return removed

