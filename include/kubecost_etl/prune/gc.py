"""Pruning one cluster's repository in two phases, restic/kopia style.

**Phase 1, forget**: the policy decides; for every
forgotten snapshot the manifest is deleted first, then its verification record. The manifest is
the snapshot's commit point, so deleting it first makes the snapshot vanish for everyone in one
request: ``snapshot_ids()``, ``latest_good()`` and restore only ever see snapshots with a manifest,
and a prune killed after the manifests went leaves only invisible verification records, which the
next prune sweeps (``records_deleted``). The other order would leave, after a kill, a manifest with
no verification: a snapshot that looks restorable by id while its removal is half done.

**Phase 2, collect**: recomputed from the store, never from phase 1's result, so a retry or the
next prune finishes whatever a killed one left. An object is deleted only when no remaining
manifest references it **and** its ``last_modified`` is older than ``gc_safety_margin``: a backup
uploads its objects before it writes its manifest, so the objects of a backup still running are
younger than the margin and stay. Manifests are listed again right before every delete batch and
anything a new one references is spared. Objects with no modification time are never deleted.
Unfinished multipart uploads under the cluster's repository older than the margin are aborted.

Both phases run under the cluster's lease (``kubecost_etl_prune``), so no backup, restore or repair
of the cluster runs meanwhile. The margin is what keeps phase 2 safe against writers the lease
cannot stop: a backup worker that lost its lease (expired, taken over) and still uploads, requests
still in flight. Phase 2 stays under the lease for one case age cannot cover: a backup whose plan
finds an old, unreferenced object already stored reuses it without uploading it again; if the
object were collected between that plan and its commit, the new snapshot would name a deleted
object. The per-batch manifest check narrows that window; the lease closes it.

A dry run walks exactly the same code and reports exactly the same, deleting nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubecost_etl.errors import KubecostEtlError, Refusal
from kubecost_etl.prune.policy import QUARANTINED, VERIFIED, Decision, SnapshotState, apply_policy
from kubecost_etl.prune.settings import RetentionSettings
from kubecost_etl.snapshots.repository import Manifest, Repository, snapshot_time
from kubecost_etl.storage.base import ObjectNotFound

log = logging.getLogger(__name__)
DELETE_BATCH = 1000
MANIFEST = "manifest.json"


class PruneRefused(Refusal, RuntimeError):
    """Pruning would be unsafe (a manifest that cannot be read, a decision that drops the last good copy)."""


class PruneError(KubecostEtlError, RuntimeError):
    pass


# ------------------------------------------------------------------------------------------- results


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ForgetResult:
    """Phase 1: every snapshot's decision (newest first) and what was (or would be) deleted."""

    cluster_id: str
    dry_run: bool
    at: str
    decisions: tuple[Decision, ...]
    manifests_deleted: int = 0
    records_deleted: int = 0

    @property
    def forgotten(self) -> list[str]:
        return [d.snapshot_id for d in self.decisions if not d.keep]

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "dry_run": self.dry_run,
            "at": self.at,
            "decisions": [d.as_dict() for d in self.decisions],
            "manifests_deleted": self.manifests_deleted,
            "records_deleted": self.records_deleted,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ForgetResult:
        return cls(
            data["cluster_id"],
            data["dry_run"],
            data["at"],
            tuple(Decision.from_dict(d) for d in data["decisions"]),
            data["manifests_deleted"],
            data["records_deleted"],
        )


@dataclass(frozen=True)
class CollectResult:
    """Phase 2: objects deleted and left, stale records swept, unfinished uploads aborted."""

    cluster_id: str
    dry_run: bool
    at: str
    objects_deleted: int
    bytes_deleted: int
    objects_remaining: int  # referenced, plus unreferenced but younger than the margin
    bytes_remaining: int
    objects_young: int  # unreferenced, kept by the margin (a backup may still be writing its manifest)
    bytes_young: int
    records_deleted: int  # verification records of snapshots whose manifest is gone
    uploads_aborted: tuple[str, ...] = ()
    uploads_checked: bool = False  # False: the store cannot list unfinished uploads
    spared_late: int = 0  # candidates a manifest committed during this phase turned out to reference

    def as_dict(self) -> dict:
        body = dict(self.__dict__)
        body["uploads_aborted"] = list(self.uploads_aborted)
        return body

    @classmethod
    def from_dict(cls, data: dict) -> CollectResult:
        return cls(**{**data, "uploads_aborted": tuple(data["uploads_aborted"])})


@dataclass(frozen=True)
class PruneReport:
    """What one prune of one cluster kept, forgot and deleted (or, in a dry run, would)."""

    cluster_id: str
    repository: str
    dry_run: bool
    policy: dict
    kept: tuple[Decision, ...]  # with the rule(s) that kept each
    forgotten: tuple[Decision, ...]  # with the reason
    objects_deleted: int
    bytes_deleted: int
    objects_remaining: int
    bytes_remaining: int
    objects_young: int
    bytes_young: int
    records_deleted: int
    uploads_aborted: tuple[str, ...]
    uploads_checked: bool
    started: str = ""
    finished: str = ""
    extensions: dict = field(default_factory=dict)  # e.g. federated mirror retention (federation issue)

    @classmethod
    def build(
        cls, repository: str, policy: RetentionSettings, forget: ForgetResult, collect: CollectResult
    ) -> PruneReport:
        return cls(
            cluster_id=forget.cluster_id,
            repository=repository,
            dry_run=forget.dry_run,
            policy=policy.as_dict(),
            kept=tuple(d for d in forget.decisions if d.keep),
            forgotten=tuple(d for d in forget.decisions if not d.keep),
            objects_deleted=collect.objects_deleted,
            bytes_deleted=collect.bytes_deleted,
            objects_remaining=collect.objects_remaining,
            bytes_remaining=collect.bytes_remaining,
            objects_young=collect.objects_young,
            bytes_young=collect.bytes_young,
            records_deleted=forget.records_deleted + collect.records_deleted,
            uploads_aborted=collect.uploads_aborted,
            uploads_checked=collect.uploads_checked,
            started=forget.at,
            finished=collect.at,
        )

    def as_dict(self) -> dict:
        body = dict(self.__dict__)
        body["kept"] = [d.as_dict() for d in self.kept]
        body["forgotten"] = [d.as_dict() for d in self.forgotten]
        body["uploads_aborted"] = list(self.uploads_aborted)
        body["extensions"] = dict(self.extensions)
        return body

    @classmethod
    def from_dict(cls, data: dict) -> PruneReport:
        return cls(
            **{
                **data,
                "kept": tuple(Decision.from_dict(d) for d in data["kept"]),
                "forgotten": tuple(Decision.from_dict(d) for d in data["forgotten"]),
                "uploads_aborted": tuple(data["uploads_aborted"]),
                "extensions": dict(data.get("extensions") or {}),
            }
        )

    def comparable(self) -> dict:
        """Everything but the mode and the clock: a dry run's equals the real run's on the same state."""
        body = self.as_dict()
        for key in ("dry_run", "started", "finished"):
            body.pop(key)
        return body

    def table(self) -> str:
        """The decisions and the totals, for the task log."""
        verb = "would be" if self.dry_run else "were"
        rows = [("snapshot", "made", "status", "decision")]
        for d in sorted(
            self.kept + self.forgotten, key=lambda d: (d.made or "", d.snapshot_id), reverse=True
        ):
            rows.append(
                (
                    d.snapshot_id,
                    d.made or "?",
                    d.status,
                    ("keep: " if d.keep else "FORGET: ") + ", ".join(d.reasons),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"prune of {self.cluster_id} in {self.repository}" + (" (DRY RUN)" if self.dry_run else "")]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
        ]
        lines.append(
            f"{len(self.kept)} snapshot(s) kept, {len(self.forgotten)} {verb} forgotten; "
            f"{self.objects_deleted} object(s), {self.bytes_deleted / 1e6:.1f} MB {verb} deleted; "
            f"{self.objects_remaining} object(s), {self.bytes_remaining / 1e6:.1f} MB remain "
            f"({self.objects_young} unreferenced kept by the safety margin); "
            f"{self.records_deleted} stale record(s) and {len(self.uploads_aborted)} unfinished upload(s) "
            f"{verb} removed"
            + ("" if self.uploads_checked else " (this store cannot list unfinished uploads)")
        )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- phase 1


def survey(repo: Repository) -> list[SnapshotState]:
    """Every committed snapshot with its time and verification status (``quarantined``: verified, but it
    names an object a later verify found damaged)."""
    states = []
    quarantined = repo.quarantined()
    for snapshot_id in repo.snapshot_ids():
        verification = repo.load_verification(snapshot_id)
        status = "unverified" if verification is None else VERIFIED if verification.get("ok") else "failed"
        if status == VERIFIED and quarantined:
            if any(e.object in quarantined for e in repo.load_manifest(snapshot_id).files):
                status = QUARANTINED
        states.append(SnapshotState(snapshot_id, snapshot_time(snapshot_id), status))
    return states


def forget(
    repo: Repository,
    settings: RetentionSettings,
    *,
    dry_run: bool,
    now: datetime | None = None,
    in_use: Iterable[str] = (),
) -> ForgetResult:
    """Decide, check the decision keeps the last good copy, then delete manifests, then their records."""
    now = now or datetime.now(UTC)
    states = survey(repo)
    decisions = apply_policy(states, settings, now, in_use)
    _check_keeps_last_good(decisions)
    gone = [d.snapshot_id for d in decisions if not d.keep]
    records = sum(1 for s in states if s.snapshot_id in gone and s.status != "unverified")
    if gone and not dry_run:
        # The manifest is the commit point: the snapshot is gone for every reader once it is.
        repo.store.delete(repo.manifest_key(s) for s in gone)
        repo.store.delete(repo.verification_key(s) for s in gone)  # missing ones are ignored
    log.info(
        "%s: %d snapshot(s), %d kept, %d %s",
        repo.cluster_id,
        len(decisions),
        len(decisions) - len(gone),
        len(gone),
        "would be forgotten" if dry_run else "forgotten",
    )
    return ForgetResult(repo.cluster_id, dry_run, _time(now), tuple(decisions), len(gone), records)


def _check_keeps_last_good(decisions: list[Decision]) -> None:
    verified = [d for d in decisions if d.status == VERIFIED and d.made]
    if verified:
        newest = max(verified, key=lambda d: (d.made, d.snapshot_id))
        if not newest.keep:
            raise PruneRefused(f"the decision would forget the newest verified snapshot {newest.snapshot_id}")


# ------------------------------------------------------------------------------------------- phase 2


def collect(
    repo: Repository,
    settings: RetentionSettings,
    *,
    dry_run: bool,
    now: datetime | None = None,
    forgotten: Iterable[str] = (),
    on_batch: Callable[[list[str]], None] | None = None,
) -> CollectResult:
    """Delete unreferenced objects older than the margin; sweep stale records and unfinished uploads.

    ``forgotten``: snapshots phase 1 forgot; in a dry run their manifests still exist and are
    treated as gone. ``on_batch`` sees each batch of candidate keys before the last manifest check (tests).
    """
    now = now or datetime.now(UTC)
    cutoff = now - settings.margin
    forgotten = set(forgotten)
    manifests, records = _snapshot_dirs(repo)
    live = sorted(set(manifests) - forgotten)
    referenced: set[str] = set()
    for snapshot_id in live:
        referenced |= _references(repo, snapshot_id)

    candidates: dict[str, int] = {}
    remaining = remaining_bytes = young = young_bytes = 0
    for info in repo.store.list(repo.key("objects/")):
        relative = info.key[len(repo.root) :]
        if relative in referenced:
            remaining, remaining_bytes = remaining + 1, remaining_bytes + info.size
        elif info.last_modified is None or info.last_modified >= cutoff:
            remaining, remaining_bytes = remaining + 1, remaining_bytes + info.size
            young, young_bytes = young + 1, young_bytes + info.size
        else:
            candidates[relative] = info.size

    stale_records = [
        key
        for snapshot_id, entries in records.items()
        if snapshot_id not in manifests
        for key, modified in entries
        if modified is not None and modified < cutoff
    ]

    deleted = deleted_bytes = spared = 0
    deleted_keys: set[str] = set()
    seen = set(manifests)
    for batch in _batches(sorted(candidates), DELETE_BATCH):
        if on_batch is not None:
            on_batch(batch)
        # A backup may have committed meanwhile (one that reused a stored object): spare what it names.
        fresh, _ = _snapshot_dirs(repo)
        for snapshot_id in sorted(set(fresh) - seen):
            seen.add(snapshot_id)
            late = _references(repo, snapshot_id)
            spared += len(late & set(candidates))
            for key in late & set(candidates):
                size = candidates.pop(key)
                remaining, remaining_bytes = remaining + 1, remaining_bytes + size
        batch = [key for key in batch if key in candidates]
        if not batch:
            continue
        if not dry_run:
            repo.store.delete(repo.key(key) for key in batch)
            deleted_keys.update(batch)
        deleted += len(batch)
        deleted_bytes += sum(candidates[key] for key in batch)

    if stale_records and not dry_run:
        repo.store.delete(repo.key(key) for key in stale_records)
    if deleted_keys:  # a deleted object's quarantine record has nothing left to guard
        repo.release(deleted_keys & repo.quarantined())
    uploads, checked = _stale_uploads(repo, cutoff, dry_run)
    result = CollectResult(
        repo.cluster_id,
        dry_run,
        _time(now),
        deleted,
        deleted_bytes,
        remaining,
        remaining_bytes,
        young,
        young_bytes,
        len(stale_records),
        tuple(uploads),
        checked,
        spared,
    )
    log.info("%s: %s", repo.cluster_id, result.as_dict())
    return result


def _snapshot_dirs(repo: Repository) -> tuple[set[str], dict[str, list[tuple[str, datetime | None]]]]:
    """Snapshot ids with a manifest, and every other file under each snapshot dir (key, modified)."""
    prefix = repo.key("snapshots/")
    manifests: set[str] = set()
    others: dict[str, list[tuple[str, datetime | None]]] = {}
    for info in repo.store.list(prefix):
        rest = info.key[len(prefix) :]
        if rest.count("/") != 1:
            continue  # not a snapshot's file: leave it alone
        snapshot_id, name = rest.split("/")
        if name == MANIFEST:
            manifests.add(snapshot_id)
        else:
            others.setdefault(snapshot_id, []).append((info.key[len(repo.root) :], info.last_modified))
    return manifests, others


def _references(repo: Repository, snapshot_id: str) -> set[str]:
    """The objects a manifest names; a manifest that cannot be read stops the collection."""
    try:
        raw = repo.store.read_bytes(repo.manifest_key(snapshot_id))
    except ObjectNotFound:
        return set()  # forgotten meanwhile (another prune): it references nothing any more
    try:
        manifest = Manifest.from_json(raw)
        return {entry.object for entry in manifest.files}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PruneRefused(
            f"the manifest of snapshot {snapshot_id!r} of {repo.cluster_id!r} cannot be read "
            f"({exc}); nothing is collected until it is fixed or removed"
        ) from None


def _batches(keys: list[str], size: int):
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _stale_uploads(repo: Repository, cutoff: datetime, dry_run: bool) -> tuple[list[str], bool]:
    """Abort unfinished uploads (S3 multipart uploads, partial files) under the cluster's repository
    begun before ``cutoff``; one without a start time is left alone.

    Through the store's ``list_pending_uploads``/``abort_pending_upload``; a store without them reports
    ``uploads_checked: False``. (The lease's acquire also aborts uploads older than its ttl.)
    """
    store = repo.store
    lister = getattr(store, "list_pending_uploads", None)
    aborter = getattr(store, "abort_pending_upload", None)
    if lister is None or aborter is None:
        return [], False
    stale = [u for u in lister(repo.root) if u.initiated is not None and u.initiated < cutoff]
    if not dry_run:
        for upload in stale:
            aborter(upload)
    return sorted(u.key[len(repo.root) :] if u.key.startswith(repo.root) else u.key for u in stale), True


def prune(
    repo: Repository,
    settings: RetentionSettings,
    *,
    dry_run: bool,
    now: datetime | None = None,
    in_use: Iterable[str] = (),
    stop_after_forget: bool = False,
) -> PruneReport | ForgetResult:
    """Both phases in one call (``stop_after_forget``: the fault hook a killed run leaves behind)."""
    forgotten = forget(repo, settings, dry_run=dry_run, now=now, in_use=in_use)
    if stop_after_forget:
        return forgotten
    collected = collect(repo, settings, dry_run=dry_run, now=now, forgotten=forgotten.forgotten)
    return PruneReport.build(repo.description, settings, forgotten, collected)
