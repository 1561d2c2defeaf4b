"""Who writes a cluster's part of the federated bucket: a small marker object naming the writer.

Two writers for one ``federated/<cluster id>/`` (two Airflow installs, or a config copied to a second
cluster with the same id) would overwrite each other's files and the Aggregator would mix two
clusters. The marker names the configured cluster and the installation; another writer is refused,
naming both, unless ``federated.take_over`` is set.

Not race-free: two writers starting at the very same moment may both see no marker (a conditional
write would close that gap once the stores offer one).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from kubecost_etl.errors import Refusal
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore

from .layout import FederatedLayout


class OwnerConflict(Refusal):
    """The cluster's federated prefix belongs to another writer."""


@dataclass(frozen=True)
class Owner:
    writer: str  # the cluster's id in this project's configuration
    install_id: str  # this Airflow installation
    since: str = ""

    def same_writer(self, other: Owner) -> bool:
        return (self.writer, self.install_id) == (other.writer, other.install_id)

    def describe(self) -> str:
        return f"cluster {self.writer!r} of install {self.install_id!r}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Owner:
        return cls(str(data["writer"]), str(data["install_id"]), str(data.get("since", "")))


def read_owner(store: ObjectStore, layout: FederatedLayout) -> Owner | None:
    try:
        raw = store.read_bytes(layout.owner_key)
    except ObjectNotFound:
        return None
    try:
        return Owner.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        # Unreadable: someone else's object or damage. Treat it as a foreign writer, never overwrite silently.
        return Owner("<unreadable marker>", "<unknown>")


def check_owner(store: ObjectStore, layout: FederatedLayout, me: Owner, take_over: bool) -> Owner | None:
    """Refuse if another writer owns the prefix (unless ``take_over``); return the marker found."""
    found = read_owner(store, layout)
    if found is not None and not found.same_writer(me) and not take_over:
        raise OwnerConflict(
            f"{store.description}/{layout.owner_key} names another writer: {found.describe()} "
            f"(since {found.since or 'unknown'}); this is {me.describe()}. Two writers for federated "
            f"cluster id {layout.cluster_id!r} would overwrite each other: give one a different "
            "federated.cluster_id, or set federated.take_over: true on the one that should write"
        )
    return found


def claim(store: ObjectStore, layout: FederatedLayout, me: Owner, take_over: bool) -> Owner:
    """Check, then write our marker if it is not there yet (the run's first write). No write when
    it is ours.
    """
    found = check_owner(store, layout, me, take_over)
    if found is not None and found.same_writer(me):
        return found
    mine = Owner(me.writer, me.install_id, datetime.now(UTC).isoformat())
    store.put_bytes(
        layout.owner_key, json.dumps(mine.as_dict(), sort_keys=True).encode(), content_type="application/json"
    )
    return mine
