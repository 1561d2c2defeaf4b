"""Streaming a snapshot into a staging dir next to the ETL dir, and checking what arrived.

One ``tar -x`` exec reads an archive we write frame by frame: each file comes from the store,
is decompressed and hashed on the way (see ``tar_stream``), so memory stays at about one chunk
and one frame and nothing lands on the worker's disk. The archive's only top directory is the
staging dir's own name, so tar writes nowhere else; restored files get the live dir's owner.
Any failure removes the staging dir again: the live dir is never touched here.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import time
from collections.abc import Callable, Iterable

from websocket import WebSocketException

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.kube.exec import CommandNotFound, ExecError, ExecStreamCut, PodExec
from kubecost_etl.kube.pod_files import hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore import pod_dirs
from kubecost_etl.restore.pod_dirs import RestoreDirs
from kubecost_etl.snapshots.pinned import RestoreRefused
from kubecost_etl.snapshots.repository import FileEntry, Repository
from kubecost_etl.transfer.compression import decompress
from kubecost_etl.transfer.concurrent import prefetch
from kubecost_etl.transfer.tar_stream import ArchiveFile, FrameSink, write_archive

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
PREFETCH_CHUNKS = 8  # decompressed chunks read ahead per object (about 1 MB each)


class StagingFailed(KubecostEtlError, RuntimeError):
    """The staged files are not what the snapshot holds; the staging dir was removed."""


def stage_files(
    core_api,
    target: ExecTarget,
    repo: Repository | None,
    files: list[FileEntry],
    dirs: RestoreDirs,
    content: Callable[[FileEntry], Callable[[], Iterable[bytes]]] | None = None,
) -> dict:
    """Unpack ``files`` into the staging dir (created here, replacing this run's own leftover).

    Each file's bytes come from the snapshot's object in ``repo``, or from ``content(entry)`` (a mirror's
    object read as stored, see ``restore.mirror``).
    """
    opener = content or (lambda entry: _content(repo, entry))
    state = pod_dirs.inspect(core_api, target, dirs)
    if state.live_not_a_directory:
        raise RestoreRefused(f"{dirs.live} in pod {target.pod.name} exists but is not a directory")
    pod_dirs.remove_stale_staging(core_api, target, dirs, state)
    if state.staging:  # an earlier try of this run got part of the way
        pod_dirs.remove(core_api, target, dirs, dirs.staging)
    if not state.live:
        pod_dirs.ensure_parent(core_api, target, dirs)  # a wiped volume may lack even the parent
    uid, gid = pod_dirs.owner_of(core_api, target, dirs, state.live)
    try:
        stats = _stream(core_api, target, opener, sorted(files, key=lambda e: e.path), dirs, uid, gid)
    except BaseException:
        _remove_after_failure(core_api, target, dirs)
        raise
    log.info(
        "staged %d files, %.1f MB in %.1f s (%.1f MB/s) into %s",
        stats["files"],
        stats["bytes"] / 1e6,
        stats["seconds"],
        stats["mb_per_s"],
        dirs.staging,
    )
    return stats


def _stream(
    core_api,
    target: ExecTarget,
    opener: Callable[[FileEntry], Callable[[], Iterable[bytes]]],
    files: list[FileEntry],
    dirs: RestoreDirs,
    uid: int,
    gid: int,
) -> dict:
    command = ["tar", "-x", "-f", "-", "-C", dirs.parent]
    started = last_report = time.monotonic()
    done, total = 0, sum(e.size for e in files)

    def progress(nbytes: int) -> None:
        nonlocal done, last_report
        done += nbytes
        now = time.monotonic()
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            log.info(
                "streamed %.1f/%.1f MB, %.1f MB/s", done / 1e6, total / 1e6, done / 1e6 / (now - started)
            )

    archive = [ArchiveFile(e.path, e.size, e.mtime, e.sha256, opener(e)) for e in files]
    with target.exec(core_api, command, stdin=True) as session:
        sink = FrameSink(session.write_stdin)
        try:
            stats = write_archive(
                sink,
                posixpath.basename(dirs.staging),
                archive,
                uid=uid,
                gid=gid,
                dir_mtime=int(time.time()),
                on_progress=progress,
            )
            session.close_stdin()  # v5 only; on v4 tar stops at the archive's end marker
            session.run()  # tar's exit status: raises if it failed or the stream was cut
        except (WebSocketException, OSError) as exc:
            raise _why_tar_stopped(session, exc) from exc
    seconds = time.monotonic() - started
    return {
        **stats,
        "seconds": round(seconds, 3),
        "mb_per_s": round(stats["bytes"] / 1e6 / max(seconds, 1e-6), 1),
        "staging": dirs.staging,
    }


def _content(repo: Repository, entry: FileEntry):
    # Downloaded and decompressed in a thread a few chunks ahead while the previous chunks are hashed
    # and written into the exec: the store and the pod are both busy, not one after the other.
    return lambda: prefetch(
        decompress(repo.store.open_read(repo.key(entry.object)), entry.compression),
        PREFETCH_CHUNKS,
        name="restore-read",
    )


def _why_tar_stopped(session: PodExec, exc: BaseException) -> ExecError:
    """The connection failed: tar may have exited early and said why; otherwise the stream was cut."""
    try:
        session.run()
    except ExecError as tar_error:
        return tar_error
    except (WebSocketException, OSError):
        pass
    return ExecStreamCut(
        f"{session.description}: the connection broke before tar's exit status arrived: {exc}"
    )


def _remove_after_failure(core_api, target: ExecTarget, dirs: RestoreDirs) -> None:
    try:
        pod_dirs.remove(core_api, target, dirs, dirs.staging)
    except Exception as exc:  # keep the original error; the teardown and the next run retry the removal
        log.error("could not remove the staging dir %s after the failure: %s", dirs.staging, exc)


def check_staged(
    core_api, target: ExecTarget, files: list[FileEntry], dirs: RestoreDirs, batch: int = 400
) -> dict:
    """Count, sizes and (where the pod has sha256sum) checksums of the staged files; remove them if wrong."""
    staged = dataclasses.replace(target, etl_root=dirs.staging)
    try:
        problems, report = _staged_problems(core_api, staged, files, batch)
    except BaseException:
        _remove_after_failure(core_api, target, dirs)
        raise
    if problems:
        _remove_after_failure(core_api, target, dirs)
        raise StagingFailed(
            f"the staged files in {dirs.staging} do not match the snapshot ({len(problems)} "
            "problem(s)); nothing was swapped: " + "; ".join(problems[:10])
        )
    return report


def _staged_problems(
    core_api, staged: ExecTarget, files: list[FileEntry], batch: int
) -> tuple[list[str], dict]:
    expected = {e.path: e for e in files}
    found, refused = list_files(core_api, staged)
    present = {f.path: f for f in found}
    problems = [f"not a plain file in staging: {reason}" for reason in refused]
    problems += [f"{p}: missing" for p in sorted(set(expected) - set(present))]
    problems += [f"{p}: not in the snapshot" for p in sorted(set(present) - set(expected))]
    problems += [
        f"{p}: {present[p].size} bytes, snapshot has {e.size}"
        for p, e in expected.items()
        if p in present and present[p].size != e.size
    ]
    mtimes_off = sum(1 for p, e in expected.items() if p in present and present[p].mtime != e.mtime)
    if mtimes_off:
        log.warning("%d staged file(s) did not keep the snapshot's mtime", mtimes_off)
    checksums = False
    if not problems and files:
        try:
            digests = hash_files(core_api, staged, sorted(expected), batch)
            checksums = True
            problems += [
                f"{p}: sha256 differs from the snapshot"
                for p, e in expected.items()
                if digests[p] != e.sha256
            ]
        except CommandNotFound:
            log.warning(
                "pod %s has no sha256sum: staged files checked by count and size only", staged.pod.name
            )
    report = {
        "files": len(present),
        "bytes": sum(f.size for f in present.values()),
        "checksums": checksums,
        "mtime_mismatches": mtimes_off,
    }
    return problems, report
