"""One lease per cluster, shared by every pipeline that reads or changes the cluster's ETL.

The lease is a small JSON object in the cluster's backup object store, next to the data, the way
restic and kopia lock a repository, so it holds across DAGs and across Airflow deployments that
point at the same cluster and bucket::

    <store prefix>/kubecost-etl-leases/<cluster>.json

    {"format": "kubecost-etl-lease/v1", "cluster_id": "prod-east",
     "holder": {"dag_id": ..., "run_id": ..., "map_index": -1, "try_number": 1, "host": ..., "pid": ...,
                "token": "<random>"},
     "acquired_at": "...Z", "renewed_at": "...Z", "expires_at": "...Z"}

- acquire: create-if-absent. Present and expired: taken over with replace-if-unchanged (two takers
  cannot both win). Present and live: `LeaseHeld`, naming the holder. Present and held by an earlier
  try of the same task (same dag, run and map index): adopted, so a retried acquire whose answer
  was lost does not wait for itself.
- renew: replace-if-unchanged by the holder's token; `LeaseLost` if another holder or nobody has it.
- release: delete-if-unchanged, idempotent: a retry reads what is there and tells "released",
  "already gone" or "taken by someone else" apart; it never deletes another holder's lease.
- after every write the object is read back and the token compared: on a store that does not
  enforce preconditions (the GCS emulator) this narrows, not closes, the race; on real stores it
  is what settles a conditional write whose answer was lost.

Times are the writers' clocks: `ttl` must be far larger than the clock skew between workers.
No Airflow imports here; the glue is in `kubecost_etl.airflow.lease`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kubecost_etl.errors import ConfigError, KubecostEtlError, Refusal, TransientError
from kubecost_etl.storage.base import ObjectStore, PreconditionFailed, StorageError, VersionedObject

log = logging.getLogger(__name__)

FORMAT = "kubecost-etl-lease/v1"
ROOT = "kubecost-etl-leases"
CONTENT_TYPE = "application/json"
_MAX_RACES = 5  # conditional write conflicts in a row before giving up this attempt

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def lease_key(cluster_id: str) -> str:
    return f"{ROOT}/{cluster_id}.json"


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseSettings:
    """`lease:` in a cluster's config (or `defaults`)."""

    # A holder that stops renewing loses the lease after this. It must cover the longest gap between
    # two tasks of a run (nobody renews while a retry waits out its delay, up to 15 minutes).
    ttl: timedelta = timedelta(minutes=30)
    wait: timedelta = timedelta(hours=2)  # how long a pipeline waits for another holder before refusing
    poke_interval: timedelta = timedelta(seconds=60)  # how often a waiting pipeline looks again

    @property
    def renew_every(self) -> timedelta:
        return self.ttl / 3


_SETTING_KEYS = {"ttl", "wait", "poke_interval"}


def parse_lease_settings(raw: Any, where: str) -> LeaseSettings:
    """`{ttl: 10m, wait: 2h, poke_interval: 60s}` (seconds as numbers, or s/m/h/d suffixes)."""
    if raw is None:
        return LeaseSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: lease: expected a mapping with {sorted(_SETTING_KEYS)}")
    unknown = sorted(set(raw) - _SETTING_KEYS)
    if unknown:
        raise ConfigError(f"{where}: lease: unknown key(s) {unknown}; known: {sorted(_SETTING_KEYS)}")
    values = {key: _duration(raw[key], f"{where}: lease.{key}") for key in raw}
    settings = LeaseSettings(**values)
    if settings.ttl < timedelta(seconds=30):
        raise ConfigError(f"{where}: lease.ttl: at least 30s (renewals run every ttl/3)")
    if settings.poke_interval <= timedelta(0):
        raise ConfigError(f"{where}: lease.poke_interval: must be positive")
    return settings


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any, where: str) -> timedelta:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected seconds or a duration like 10m, got {value!r}")
    if isinstance(value, int | float) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str) and len(value) >= 2 and value[-1] in _UNITS and value[:-1].isascii():
        number = value[:-1]
        if number.isdigit() and len(number) <= 9:
            return timedelta(seconds=int(number) * _UNITS[value[-1]])
    raise ConfigError(f"{where}: expected seconds or a duration like 90s, 10m, 2h, 1d; got {value!r}")


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds (or asks for) a lease. Crosses task boundaries through XCom (`as_dict`)."""

    dag_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Holder:
        return cls(
            dag_id=str(raw["dag_id"]),
            run_id=str(raw["run_id"]),
            map_index=int(raw.get("map_index", -1)),
            try_number=int(raw.get("try_number", 1)),
            host=str(raw.get("host", "")),
            pid=int(raw.get("pid", 0)),
            token=str(raw["token"]),
        )

    def same_task(self, other: Holder) -> bool:
        """An earlier or later try of the same task of the same run (its lease may be adopted)."""
        return (self.dag_id, self.run_id, self.map_index) == (other.dag_id, other.run_id, other.map_index)

    def describe(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return (
            f"{self.dag_id} run {self.run_id}{index} "
            f"(try {self.try_number}, host {self.host}, pid {self.pid})"
        )


@dataclass(frozen=True)
class LeaseRecord:
    """The lease object's content."""

    cluster_id: str
    holder: Holder
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def describe(self, now: datetime) -> str:
        left = self.expires_at - now
        state = f"expires in {int(left.total_seconds())}s" if left > timedelta(0) else "expired"
        return (
            f"{self.holder.describe()}, acquired {_iso(self.acquired_at)}, renewed {_iso(self.renewed_at)}, "
            f"{state} ({_iso(self.expires_at)})"
        )

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "cluster_id": self.cluster_id,
            "holder": self.holder.as_dict(),
            "acquired_at": _iso(self.acquired_at),
            "renewed_at": _iso(self.renewed_at),
            "expires_at": _iso(self.expires_at),
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> LeaseRecord:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            return cls(
                cluster_id=str(raw["cluster_id"]),
                holder=Holder.from_dict(raw["holder"]),
                acquired_at=_parse_time(raw["acquired_at"]),
                renewed_at=_parse_time(raw["renewed_at"]),
                expires_at=_parse_time(raw["expires_at"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Never guessed at or overwritten: a person must look (it may be a newer format).
            raise LeaseCorrupt(
                f"lease object {where} is unreadable ({exc}); remove it by hand if no run holds it"
            ) from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --- errors ----------------------------------------------------------------------------------


class LeaseHeld(TransientError):
    """Another pipeline holds the cluster's lease: wait and look again."""

    def __init__(self, cluster_id: str, record: LeaseRecord, now: datetime) -> None:
        super().__init__(f"cluster {cluster_id}: the lease is held by {record.describe(now)}")
        self.cluster_id = cluster_id
        self.record = record


class LeaseWaitExhausted(Refusal):
    """The configured wait ran out while another pipeline held the lease."""

    def __init__(self, cluster_id: str, record: LeaseRecord, waited: timedelta, now: datetime) -> None:
        super().__init__(
            f"cluster {cluster_id}: gave up after waiting {int(waited.total_seconds())}s (lease.wait) "
            f"for the lease held by {record.describe(now)}"
        )
        self.cluster_id = cluster_id
        self.record = record


class LeaseLost(Refusal):
    """This run no longer holds the lease (it expired and was taken over, or was removed): its work
    may have interleaved with another pipeline's, so it stops; a retry cannot make that right."""


class LeaseCorrupt(Refusal):
    """The lease object cannot be read; it is never overwritten blindly."""


class LeaseStoreError(TransientError):
    """The store did not answer a lease operation; retried."""


# --- the lease -------------------------------------------------------------------------------


@dataclass
class ClusterLease:
    """The lease of one cluster in one store."""

    store: ObjectStore
    cluster_id: str
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    clock: Clock = utcnow

    @property
    def key(self) -> str:
        return lease_key(self.cluster_id)

    @property
    def location(self) -> str:
        return f"{self.store.description}/{self.key}"

    def read(self) -> tuple[LeaseRecord, str] | None:
        found = self._read()
        return None if found is None else (self._parse(found), found.version)

    def acquire(self, holder: Holder) -> Holder:
        """Take the lease for `holder` (or adopt one an earlier try of the same task holds).

        Returns the holder the lease is now recorded for (an adopted lease keeps its token).
        Raises `LeaseHeld` when another live holder has it.
        """
        for _ in range(_MAX_RACES):
            now = self.clock()
            found = self._read()
            if found is None:
                record = self._new_record(holder, now)
                try:
                    with self._store_errors():
                        self.store.create_if_absent(self.key, record.to_json(), content_type=CONTENT_TYPE)
                except PreconditionFailed:
                    pass  # someone was faster, or our own earlier attempt's answer was lost: look again
                return_holder = self._confirm(holder, "acquired")
                if return_holder is not None:
                    return return_holder
                continue
            current = self._parse(found)
            if current.holder.token == holder.token:
                return holder  # ours already (a repeated call)
            if current.holder.same_task(holder):
                log.info(
                    "cluster %s: adopting the lease an earlier try of this task took: %s",
                    self.cluster_id,
                    current.describe(now),
                )
                self._renew_version(current, found.version, now)
                return current.holder
            if not current.expired(now):
                raise LeaseHeld(self.cluster_id, current, now)
            log.warning(
                "cluster %s: taking over an expired lease: %s", self.cluster_id, current.describe(now)
            )
            record = self._new_record(holder, now)
            try:
                with self._store_errors():
                    self.store.replace_if_unchanged(
                        self.key, record.to_json(), found.version, content_type=CONTENT_TYPE
                    )
            except PreconditionFailed:
                continue  # another taker won, or the holder renewed just in time: look again
            confirmed = self._confirm(holder, "took over")
            if confirmed is not None:
                return confirmed
        raise LeaseStoreError(
            f"cluster {self.cluster_id}: the lease at {self.location} kept changing under us"
        )

    def check(self, holder: Holder) -> LeaseRecord:
        """The record, if `holder` holds the lease now; `LeaseLost` otherwise."""
        found = self._read()
        return self._ours(found, holder, self.clock())

    def renew(self, holder: Holder, until: datetime | None = None) -> LeaseRecord:
        """Push the expiry to `ttl` from now, or to `until` if later (work that goes on without us,
        such as a repair Kubecost runs after one request); never earlier than it was.
        `LeaseLost` if `holder` no longer holds the lease."""
        for _ in range(_MAX_RACES):
            now = self.clock()
            found = self._read()
            current = self._ours(found, holder, now)
            try:
                return self._renew_version(current, found.version, now, until)
            except PreconditionFailed:
                continue  # changed between read and write (another of our own renewals?): look again
        raise LeaseStoreError(
            f"cluster {self.cluster_id}: the lease at {self.location} kept changing under us"
        )

    def release(self, holder: Holder) -> str:
        """Give the lease up. Idempotent: "released", "not held" (already gone), or "held by <other>"
        (it expired and was taken over: left alone)."""
        for _ in range(_MAX_RACES):
            found = self._read()
            if found is None:
                log.info("cluster %s: lease already released (%s)", self.cluster_id, self.location)
                return "not held"
            current = self._parse(found)
            if current.holder.token != holder.token:
                log.warning(
                    "cluster %s: not releasing the lease: it is held by %s",
                    self.cluster_id,
                    current.describe(self.clock()),
                )
                return f"held by {current.holder.describe()}"
            try:
                with self._store_errors():
                    deleted = self.store.delete_if_unchanged(self.key, found.version)
            except PreconditionFailed:
                continue  # renewed meanwhile (our own renewal thread): look again
            log.info("cluster %s: lease released by %s", self.cluster_id, holder.describe())
            return "released" if deleted else "not held"
        raise LeaseStoreError(
            f"cluster {self.cluster_id}: the lease at {self.location} kept changing under us"
        )

    @contextmanager
    def held(self, holder: Holder, renew_every: timedelta | None = None) -> Iterator[Renewal]:
        """Check the lease is ours, keep renewing it in a thread while the body runs, and fail with
        `LeaseLost` at the end if it was lost meanwhile (the body may call `renewal.check()` earlier).

        The lease is renewed once more on the way out, also when the body failed: the gap until the
        next task (or this one's retry) starts with a whole `ttl`.
        """
        self.renew(holder)
        renewal = Renewal(self, holder, renew_every or self.settings.renew_every)
        renewal.start()
        try:
            yield renewal
        except BaseException:
            renewal.stop()
            try:
                self.renew(holder)
            except KubecostEtlError as exc:  # the body's own error is the one to report
                log.warning("cluster %s: could not renew the lease after a failure: %s", self.cluster_id, exc)
            raise
        renewal.stop()
        renewal.check()
        self.renew(holder)  # still ours at the end, whatever happened between two renewals

    # --- internals ------------------------------------------------------------------------

    def _new_record(self, holder: Holder, now: datetime) -> LeaseRecord:
        return LeaseRecord(self.cluster_id, holder, now, now, now + self.settings.ttl)

    def _renew_version(
        self, current: LeaseRecord, version: str, now: datetime, until: datetime | None = None
    ) -> LeaseRecord:
        expires_at = max(current.expires_at, now + self.settings.ttl, until or now)
        renewed = replace(current, renewed_at=now, expires_at=expires_at)
        with self._store_errors():
            self.store.replace_if_unchanged(self.key, renewed.to_json(), version, content_type=CONTENT_TYPE)
        return renewed

    def _confirm(self, holder: Holder, what: str) -> Holder | None:
        """Read back after a write: whose token is there now decides, not the write's answer."""
        found = self._read()
        if found is None:
            return None
        current = self._parse(found)
        if current.holder.token == holder.token:
            log.info(
                "cluster %s: lease %s by %s until %s (%s)",
                self.cluster_id,
                what,
                holder.describe(),
                _iso(current.expires_at),
                self.location,
            )
            return holder
        if current.holder.same_task(holder):
            return current.holder
        raise LeaseHeld(self.cluster_id, current, self.clock())

    def _ours(self, found: VersionedObject | None, holder: Holder, now: datetime) -> LeaseRecord:
        if found is None:
            raise LeaseLost(
                f"cluster {self.cluster_id}: this run ({holder.describe()}) no longer holds the lease: "
                f"nobody holds it ({self.location} is gone)"
            )
        current = self._parse(found)
        if current.holder.token != holder.token:
            raise LeaseLost(
                f"cluster {self.cluster_id}: this run ({holder.describe()}) no longer holds the lease: "
                f"it is held by {current.describe(now)}"
            )
        return current

    def _read(self) -> VersionedObject | None:
        with self._store_errors():
            return self.store.read_versioned(self.key)

    def _parse(self, found: VersionedObject) -> LeaseRecord:
        return LeaseRecord.from_json(found.data, self.location)

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        try:
            yield
        except PreconditionFailed:
            raise
        except StorageError as exc:
            raise LeaseStoreError(f"cluster {self.cluster_id}: lease operation failed: {exc}") from exc


class Renewal:
    """The thread that renews a held lease every `interval` until stopped."""

    def __init__(self, lease: ClusterLease, holder: Holder, interval: timedelta) -> None:
        self.lease = lease
        self.holder = holder
        self.interval = interval.total_seconds()
        self.renewals = 0
        self.lost: LeaseLost | None = None
        self._last_ok = lease.clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"lease-renewal-{lease.cluster_id}"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Raise `LeaseLost` if a renewal found the lease gone or taken."""
        if self.lost is not None:
            raise self.lost

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease.renew(self.holder)
                self.renewals += 1
                self._last_ok = self.lease.clock()
            except LeaseLost as exc:
                self.lost = exc
                log.error("%s", exc)
                return
            except KubecostEtlError as exc:
                # The store did not answer: keep trying until the lease would have expired.
                if self.lease.clock() - self._last_ok >= self.lease.settings.ttl:
                    self.lost = LeaseLost(
                        f"cluster {self.lease.cluster_id}: could not renew the lease for a "
                        f"whole ttl ({exc}); another pipeline may have taken it"
                    )
                    log.error("%s", self.lost)
                    return
                log.warning("cluster %s: lease renewal failed, retrying: %s", self.lease.cluster_id, exc)
