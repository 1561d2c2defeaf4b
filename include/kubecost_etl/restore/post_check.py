"""After the swap (and restart): are the restored files in the live ETL dir, as in the snapshot?

Kubecost keeps working on its data, so two differences are its own doing, not a failed restore:
a file written after the swap (its mtime is newer than the swap's start on the pod's own clock,
which the swap's marker records) and a set file older than Kubecost's retention, which it prunes
once it reloads. A file's mtime compared with the snapshot's proves nothing (after a bad repair
every damaged file is newer than any backup). Everything else missing or different fails the
check, and the run puts the previous data back.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.etl.layout import RESOLUTIONS, parse_set_file
from kubecost_etl.kube.exec import CommandNotFound
from kubecost_etl.kube.pod_files import EtlDirMissing, hash_files, list_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.repository import FileEntry

log = logging.getLogger(__name__)
DAILY_RETENTION_DAYS = 91  # Kubecost's default etlDailyStoreDurationDays


class PostCheckFailed(KubecostEtlError, RuntimeError):
    pass


def expired(path: str, now: datetime, hourly_hours: int, daily_days: int = DAILY_RETENTION_DAYS) -> bool:
    """Whether Kubecost's retention would prune this set file by now."""
    set_file = parse_set_file(path)
    kept = {"1h": hourly_hours, "1d": daily_days}  # periods of each resolution Kubecost keeps
    if set_file is None or set_file.resolution not in kept:
        return False
    return set_file.end < now.timestamp() - kept[set_file.resolution] * RESOLUTIONS[set_file.resolution]


@dataclass(frozen=True)
class PostCheckReport:
    """A passed post-check (XCom: ``as_dict``)."""

    ok: bool
    files: int
    checksums: bool
    pruned_by_retention: int
    rewritten_since: int
    extra_files: int
    pod: dict
    swapped_at: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PostCheckReport:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def check_restored(
    core_api,
    target: ExecTarget,
    expected: list[FileEntry],
    now: datetime,
    hourly_hours: int,
    swapped_at: int | None,
    batch: int = 400,
    report_extra: bool = True,
) -> PostCheckReport:
    """Check ``expected`` against the live dir; raise ``PostCheckFailed`` listing every real problem.

    ``swapped_at`` (epoch seconds, the pod's clock) is when the swap began: only a file whose mtime is
    later was written by Kubecost since; every other file must match the snapshot by size and sha256.
    ``None`` (nothing was swapped) counts no file as rewritten.
    """
    try:
        present = {f.path: f for f in list_files(core_api, target)[0]}
    except EtlDirMissing as exc:
        raise PostCheckFailed(f"{exc}: the restored ETL dir is gone") from None
    problems, missing, pruned, rewritten, candidates = [], [], [], [], []
    for entry in expected:
        current = present.get(entry.path)
        if current is None:
            (pruned if expired(entry.path, now, hourly_hours) else missing).append(entry.path)
        elif swapped_at is not None and current.mtime > swapped_at:
            rewritten.append(entry.path)
        elif current.size != entry.size:
            problems.append(f"{entry.path}: {current.size} bytes, snapshot has {entry.size}")
        else:
            candidates.append(entry)
    problems = [f"{p}: missing" for p in missing] + problems
    checksums = False
    if candidates:
        try:
            digests = hash_files(core_api, target, [e.path for e in candidates], batch)
            checksums = True
            problems += [
                f"{e.path}: sha256 differs from the snapshot"
                for e in candidates
                if digests[e.path] != e.sha256
            ]
        except CommandNotFound:
            log.warning("pod %s has no sha256sum: restored files checked by size only", target.pod.name)
    extra = sorted(set(present) - {e.path for e in expected}) if report_extra else []
    if pruned:
        log.info("%d restored file(s) already pruned by Kubecost's retention: %s", len(pruned), pruned[:5])
    if rewritten:
        log.info(
            "%d restored file(s) written by Kubecost after the swap (mtime after %s): %s",
            len(rewritten),
            swapped_at,
            rewritten[:5],
        )
    if extra:
        log.info(
            "%d file(s) in the ETL dir that the snapshot does not have (written by Kubecost since): %s",
            len(extra),
            extra[:5],
        )
    if problems:
        raise PostCheckFailed(
            f"{len(problems)} restored file(s) are not in place in pod {target.pod.name}: "
            + "; ".join(problems[:10])
        )
    return PostCheckReport(
        ok=True,
        files=len(expected),
        checksums=checksums,
        pruned_by_retention=len(pruned),
        rewritten_since=len(rewritten),
        extra_files=len(extra),
        pod=target.pod.as_dict(),
        swapped_at=swapped_at,
    )
