"""The backup repository: content-addressed file objects plus one manifest per snapshot.

Layout under the store's prefix (readable by hand)::

    kubecost-etl-backup/<cluster>/objects/sha256/<aa>/<sha256><.zst|.gz>   file content, compressed
    kubecost-etl-backup/<cluster>/snapshots/<snapshot>/manifest.json       written last: the commit
    kubecost-etl-backup/<cluster>/snapshots/<snapshot>/verification.json   result of the verify step
    kubecost-etl-backup/<cluster>/quarantine/objects/sha256/<aa>/<name>.json  an object a verify found bad

A snapshot without ``manifest.json`` does not exist for anyone. "Latest good" means the newest
snapshot whose verification passed. Objects are named by the sha256 of the uncompressed file,
so an unchanged file is stored once however many snapshots list it.

That sharing is also how one damaged object would spread: every later backup of the unchanged file
would name it again. So a verify that finds an object missing, short or with other content puts it in
quarantine (a small record next to the objects, written before the verdict); nothing that reuses
stored objects (``reusable_objects``, a backup's plan and stream, an import) reuses a quarantined
one: the file is read again and its object written again under the same key, which mends every
snapshot naming it. Only a verify that re-reads the object and finds it right releases it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from kubecost_etl.errors import Refusal
from kubecost_etl.storage.base import ObjectNotFound, ObjectStore
from kubecost_etl.transfer.compression import SUFFIX

FORMAT = "kubecost-etl-backup/v1"
ROOT = "kubecost-etl-backup"
ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"  # the sortable prefix of every snapshot id


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the ETL root
    size: int
    mtime: int
    sha256: str
    object: str  # key of the stored object, relative to the cluster's repository
    stored_size: int
    compression: str


@dataclass
class Manifest:
    snapshot_id: str
    cluster_id: str
    created_at: str
    files: list[FileEntry]
    source: dict = field(default_factory=dict)
    base_snapshot: str | None = None
    stats: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    format: str = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        body = asdict(self)
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise ValueError(f"unsupported manifest format {body.get('format')!r}")
        body["files"] = [FileEntry(**f) for f in body["files"]]
        return cls(**body)


class SnapshotNotFound(ObjectNotFound, Refusal):
    """A named snapshot has no manifest: no retry makes it appear."""


def new_snapshot_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime(ID_TIME_FORMAT) + "-" + secrets.token_hex(3)


def snapshot_time(snapshot_id: str) -> datetime | None:
    """When a snapshot was made, from its id; None for an id not made by ``new_snapshot_id``."""
    try:
        return datetime.strptime(snapshot_id[:16], ID_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def object_key(sha256: str, compression: str) -> str:
    return f"objects/sha256/{sha256[:2]}/{sha256}{SUFFIX[compression]}"


class Repository:
    """One cluster's backups inside an object store."""

    def __init__(self, store: ObjectStore, cluster_id: str):
        self.store = store
        self.cluster_id = cluster_id
        self.root = f"{ROOT}/{cluster_id}/"

    @property
    def description(self) -> str:
        return f"{self.store.description.rstrip('/')}/{self.root}"

    def key(self, relative: str) -> str:
        return self.root + relative

    def manifest_key(self, snapshot_id: str) -> str:
        return self.key(f"snapshots/{snapshot_id}/manifest.json")

    def verification_key(self, snapshot_id: str) -> str:
        return self.key(f"snapshots/{snapshot_id}/verification.json")

    def snapshot_ids(self) -> list[str]:
        """Committed snapshots (those with a manifest), oldest first."""
        ids = []
        prefix = self.key("snapshots/")
        for info in self.store.list(prefix):
            rest = info.key[len(prefix) :]
            if rest.endswith("/manifest.json") and rest.count("/") == 1:
                ids.append(rest.split("/", 1)[0])
        return sorted(ids)

    def load_manifest(self, snapshot_id: str) -> Manifest:
        try:
            return Manifest.from_json(self.store.read_bytes(self.manifest_key(snapshot_id)))
        except ObjectNotFound:
            raise SnapshotNotFound(
                f"snapshot {snapshot_id!r} of cluster {self.cluster_id!r} does not exist "
                f"in {self.description}"
            ) from None

    def load_verification(self, snapshot_id: str) -> dict | None:
        try:
            return json.loads(self.store.read_bytes(self.verification_key(snapshot_id)))
        except ObjectNotFound:
            return None

    def latest_good(self, created_before: datetime | None = None) -> str | None:
        """The newest snapshot whose verification passed (made no later than ``created_before``) and that
        names no quarantined object: one a later verify found damaged cannot be restored, whatever its
        own verdict said when it was made (its sample may have missed the object)."""
        quarantined = self.quarantined()
        for snapshot_id in reversed(self.snapshot_ids()):
            if created_before is not None:
                made = snapshot_time(snapshot_id)
                if made is None or made > created_before:
                    continue
            verification = self.load_verification(snapshot_id)
            if not (verification and verification.get("ok")):
                continue
            if quarantined and any(e.object in quarantined for e in self.load_manifest(snapshot_id).files):
                continue
            return snapshot_id
        return None

    def object_sizes(self) -> dict[str, int]:
        """Every stored object (key relative to the repository) and its size, in one listing."""
        prefix = self.key("objects/")
        return {info.key[len(self.root) :]: info.size for info in self.store.list(prefix)}

    def reusable_objects(self) -> dict[str, int]:
        """Stored objects a new snapshot may name without writing them again: all but the quarantined."""
        stored = self.object_sizes()
        for key in self.quarantined():
            stored.pop(key, None)
        return stored

    def quarantine_key(self, object_key: str) -> str:
        return self.key(f"quarantine/{object_key}.json")

    def quarantined(self) -> set[str]:
        """Object keys (relative to the repository) a verify found bad and no verify has cleared since."""
        prefix = self.key("quarantine/")
        return {
            info.key[len(prefix) : -len(".json")]
            for info in self.store.list(prefix)
            if info.key.endswith(".json")
        }

    def quarantine(self, object_key: str, finding: str, snapshot_id: str) -> None:
        record = {
            "object": object_key,
            "finding": finding,
            "found_verifying": snapshot_id,
            "at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(
            self.quarantine_key(object_key),
            json.dumps(record, indent=1).encode(),
            content_type="application/json",
        )

    def release(self, object_keys: list[str] | set[str]) -> None:
        """Lift the quarantine of objects read back and found right (or deleted)."""
        if object_keys:
            self.store.delete(self.quarantine_key(k) for k in sorted(object_keys))

    def commit(self, manifest: Manifest) -> None:
        self.store.put_bytes(
            self.manifest_key(manifest.snapshot_id), manifest.to_json(), content_type="application/json"
        )

    def record_verification(self, snapshot_id: str, report: dict) -> None:
        self.store.put_bytes(
            self.verification_key(snapshot_id),
            json.dumps(report, indent=1).encode(),
            content_type="application/json",
        )
