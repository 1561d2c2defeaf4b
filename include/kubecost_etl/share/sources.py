"""Where a bundle's files come from: the live pod (one ``tar cf -`` exec per batch, read as
``backup/stream.py`` reads it) or a verified snapshot in the repository (objects decompressed and
re-hashed while they pass). Either way each file is read once, straight into the bundle."""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Iterator

from kubecost_etl.etl.layout import check_relative_path
from kubecost_etl.kube.exec import ExecError, command_batches
from kubecost_etl.kube.pod_files import list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.pinned import PinnedManifest
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.transfer.archive import ChunkReader, read_in_pieces
from kubecost_etl.transfer.compression import decompress

from .bundle import BundleError, SourceFile
from .selection import Candidate

log = logging.getLogger(__name__)
POD = "pod"


def pod_candidates(core_api, target: ExecTarget) -> list[Candidate]:
    files, refused = list_files(core_api, target)
    for reason in refused:
        log.warning("not shared: %s", reason)
    return [Candidate(f.path, f.size, f.mtime) for f in files]


def snapshot_candidates(pinned: PinnedManifest) -> list[Candidate]:
    return [Candidate(e.path, e.size, e.mtime, e.sha256) for e in pinned.files]


def pod_files(
    core_api, target: ExecTarget, selected: list[Candidate], batch_files: int, vanished: list[str]
) -> Iterator[SourceFile]:
    """The selected files as ``tar cf -`` in the pod sends them; files gone since the listing are
    appended to ``vanished`` (Kubecost's retention deletes old files while we work)."""
    wanted = sorted(c.path for c in selected)
    command = ["tar", "cf", "-", "-C", target.etl_root.rstrip("/")]
    for names in command_batches(command, wanted, max_count=batch_files):
        expected, seen = set(names), set()
        with target.exec(core_api, [*command, *names]) as session:
            reader = ChunkReader(session.stdout())
            try:
                with tarfile.open(fileobj=reader, mode="r|") as archive:
                    for member in archive:
                        path = check_relative_path(member.name.removeprefix("./"))
                        if path not in expected or path in seen or not member.isreg():
                            raise BundleError(
                                f"unexpected tar member {member.name!r} (type {member.type!r}) "
                                f"from {target.pod.name}"
                            )
                        seen.add(path)
                        source = archive.extractfile(member)
                        yield SourceFile(path, member.size, int(member.mtime), read_in_pieces(source))
                reader.drain()
            except ExecError as exc:
                if exc.exit_code is None:
                    raise
                log.warning(
                    "tar in %s reported a problem (files it could not read are left out): %s",
                    target.pod.name,
                    exc,
                )
            except tarfile.ReadError as exc:
                raise ExecError(f"tar stream from {target.pod.name} is broken: {exc}") from exc
        vanished.extend(sorted(expected - seen))


def snapshot_files(
    repo: Repository, pinned: PinnedManifest, selected: list[Candidate]
) -> Iterator[SourceFile]:
    """The selected files of a pinned snapshot, decompressed; the writer checks each one's sha256."""
    entries = {e.path: e for e in pinned.files}
    for candidate in sorted(selected, key=lambda c: c.path):
        entry = entries[candidate.path]
        chunks = decompress(repo.store.open_read(repo.key(entry.object)), entry.compression)
        yield SourceFile(entry.path, entry.size, entry.mtime, chunks, entry.sha256)
