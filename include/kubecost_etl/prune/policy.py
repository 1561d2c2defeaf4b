"""Which snapshots a retention policy keeps: restic's ``forget`` rules, plus what must never go.

The rules, applied to the **verified** snapshots, newest first (all times UTC):

- ``keep_last N``: the N newest.
- ``keep_hourly/daily/weekly/monthly N``: walking newest to oldest, a snapshot is kept when it is the
  first one seen in its hour / day / ISO week / month, until N such periods have been kept. As in
  restic, when fewer than N periods have snapshots, the oldest snapshot is kept as well (reason
  ``<rule>-oldest``), so a young repository keeps its first backup.
- ``keep_within D``: every snapshot made less than D before the newest verified one (restic
  measures from the newest snapshot, not from the clock, so a repository whose backups stopped
  does not empty itself).

A snapshot is kept when any rule keeps it, and the decision records every rule that did. Then the
safety rules, whatever the policy says:

- ``newest-verified``: the newest verified snapshot is always kept.
- ``in-use``: a snapshot a running restore or share names (the cluster's lease tells) is kept.
- unverified (no verification record) and failed (verification did not pass) snapshots are never
  restorable: older than the safety margin they are forgotten (reason ``unverified``/``failed``);
  younger they are left alone (``recent``), since their backup may still be verifying.
- ``quarantine``: a verified snapshot naming an object a later verify found damaged (status
  ``quarantined``) is not restorable now, so no rule counts it; but the next backup mends the object
  if the pod still has the file, so it is kept while the quarantine lasts (the health DAG alerts).
- ``undated``: a snapshot whose id carries no time is kept (never delete what cannot be dated).
- ``no-verified-snapshot``: a repository without a single verified snapshot loses nothing. A
  source file damaged in the pod fails every verification; forgetting those failed snapshots
  would leave no copy at all. Such a cluster alerts on every backup instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kubecost_etl.prune.settings import RetentionSettings

VERIFIED, UNVERIFIED, FAILED, QUARANTINED = "verified", "unverified", "failed", "quarantined"
# Kept-by reasons; "policy" (no rule kept it), "unverified" and "failed" are forget reasons.
RULES = ("last", "hourly", "daily", "weekly", "monthly", "within")


@dataclass(frozen=True)
class SnapshotState:
    """What the policy needs to know about one committed snapshot."""

    snapshot_id: str
    made: datetime | None  # from the id; None when the id carries no time
    status: str  # verified | unverified | failed | quarantined


@dataclass(frozen=True)
class Decision:
    snapshot_id: str
    made: str | None  # ISO time
    status: str
    keep: bool
    reasons: tuple[str, ...]  # the rules that kept it, or why it is forgotten

    def as_dict(self) -> dict:
        return {
            "snapshot_id": self.snapshot_id,
            "made": self.made,
            "status": self.status,
            "keep": self.keep,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Decision:
        return cls(data["snapshot_id"], data["made"], data["status"], data["keep"], tuple(data["reasons"]))


def _buckets() -> dict[str, callable]:
    return {
        "hourly": lambda t: (t.year, t.month, t.day, t.hour),
        "daily": lambda t: (t.year, t.month, t.day),
        "weekly": lambda t: t.isocalendar()[:2],
        "monthly": lambda t: (t.year, t.month),
    }


def apply_policy(
    snapshots: Iterable[SnapshotState], settings: RetentionSettings, now: datetime, in_use: Iterable[str] = ()
) -> list[Decision]:
    """One decision per snapshot, newest first."""
    in_use = set(in_use)
    everything = sorted(
        snapshots, key=lambda s: (s.made is not None, s.made or datetime.min, s.snapshot_id), reverse=True
    )
    reasons: dict[str, list[str]] = {s.snapshot_id: [] for s in everything}
    verified = [s for s in everything if s.status == VERIFIED and s.made is not None]

    for index, snap in enumerate(verified):
        if index < settings.keep_last:
            reasons[snap.snapshot_id].append("last")
    for rule, bucket_of in _buckets().items():
        remaining, last_bucket = getattr(settings, f"keep_{rule}"), None
        if not remaining:
            continue
        for snap in verified:
            bucket = bucket_of(snap.made)
            if bucket != last_bucket:
                last_bucket = bucket
                reasons[snap.snapshot_id].append(rule)
                remaining -= 1
                if remaining == 0:
                    break
        if remaining and verified and rule not in reasons[verified[-1].snapshot_id]:
            reasons[verified[-1].snapshot_id].append(f"{rule}-oldest")
    within = settings.within
    if within and verified:
        newest = verified[0].made
        for snap in verified:
            if snap.made > newest - within:
                reasons[snap.snapshot_id].append("within")
    if verified:
        reasons[verified[0].snapshot_id].append("newest-verified")

    margin = settings.margin
    decisions = []
    for snap in everything:
        kept = reasons[snap.snapshot_id]
        if snap.snapshot_id in in_use:
            kept.append("in-use")
        if snap.status == QUARANTINED:
            kept.append("quarantine")
        if snap.made is None:
            kept.append("undated")
        elif snap.status not in (VERIFIED, QUARANTINED) and snap.made > now - margin:
            kept.append("recent")
        elif not verified:
            kept.append("no-verified-snapshot")
        if kept:
            decisions.append(Decision(snap.snapshot_id, _iso(snap.made), snap.status, True, tuple(kept)))
        else:
            why = "policy" if snap.status == VERIFIED else snap.status
            decisions.append(Decision(snap.snapshot_id, _iso(snap.made), snap.status, False, (why,)))
    return decisions


def _iso(made: datetime | None) -> str | None:
    return made.strftime("%Y-%m-%dT%H:%M:%SZ") if made else None
