"""The object-store contract every backend (S3, GCS, Azure Blob, local directory) fulfils.

Keys are '/'-separated and relative to the store's own prefix, so callers never see the
bucket layout. Errors are `StorageError`s whose messages name the store and the key but
never a credential.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubecost_etl.errors import KubecostEtlError, Refusal


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    # User metadata (str -> str). Filled by `stat` always; by `list` only where the listing API
    # returns it without extra requests (see `ObjectStore.lists_metadata`); None when not known.
    metadata: dict[str, str] | None = None


class StorageError(KubecostEtlError):
    """An object-store operation failed; the message names the store and the key."""


class ObjectNotFound(StorageError):
    def __init__(self, location: str) -> None:
        super().__init__(f"object not found: {location}")
        self.location = location


class StorageConfigError(StorageError, Refusal):
    """The store is configured wrongly (bad object-store.yaml, missing connection...)."""


class SigningUnavailable(StorageError):
    """The store cannot make a time-limited download link; the message says why (never a secret)."""


class PreconditionFailed(StorageError):
    """A conditional write or delete was refused: the object exists, was changed, or is gone."""


@dataclass(frozen=True)
class VersionedObject:
    """A small object read whole, with the opaque version token conditional writes compare against
    (S3/Azure: the ETag; GCS: the generation; filesystem: inode, mtime and content hash)."""

    key: str
    data: bytes
    version: str


@dataclass(frozen=True)
class PendingUpload:
    """An unfinished upload a killed writer may have left (S3 multipart upload, filesystem partial file)."""

    key: str
    upload_id: str
    initiated: datetime | None


class ObjectStore(ABC):
    """A flat namespace of immutable-once-written objects under one prefix."""

    description: str  # e.g. "s3://bucket/prefix"; never contains secrets
    # Whether `list` fills `ObjectInfo.metadata` (GCS, Azure, filesystem). S3's ListObjectsV2 does not
    # return user metadata: there only `stat` (a HEAD per object) does.
    lists_metadata: bool = False

    @abstractmethod
    def put(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Stream `chunks` into `key` with bounded memory (about one part).

        The object appears whole or not at all: if `chunks` raises, or the store fails,
        the partial upload is aborted and the previous object under `key` (if any) stays.
        `metadata` is stored with the object and comes back in `ObjectInfo.metadata`; names made
        of lowercase letters and digits only are portable (Azure refuses '-', proxies drop '_'),
        values should be short ASCII.
        """

    @abstractmethod
    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Start a streaming download; raises `ObjectNotFound` at once if `key` is missing.

        `chunk_size` bounds the size of each yielded chunk.
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix, recursive),
        in lexicographic key order, across all result pages."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete `keys`, batched where the API allows; keys that do not exist are ignored."""

    # --- conditional operations (small objects such as leases) -----------------------------

    @abstractmethod
    def read_versioned(self, key: str) -> VersionedObject | None:
        """The whole object and its version token, read as one consistent version; None if absent."""

    @abstractmethod
    def create_if_absent(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write `data` only if `key` does not exist; its version token. `PreconditionFailed` if it exists.

        A retried request whose first answer was lost may report `PreconditionFailed` for the
        write it made itself: callers read the object back to find out what really happened.
        """

    @abstractmethod
    def replace_if_unchanged(
        self, key: str, data: bytes, version: str, *, content_type: str | None = None
    ) -> str:
        """Overwrite `key` only if it still has `version`; the new token. `PreconditionFailed` otherwise
        (changed since, or deleted)."""

    @abstractmethod
    def delete_if_unchanged(self, key: str, version: str) -> bool:
        """Delete `key` only if it still has `version`: True when deleted, False when it was already
        gone; `PreconditionFailed` when it holds another version."""

    # --- what killed writers leave ---------------------------------------------------------

    @abstractmethod
    def list_pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """Unfinished uploads under `prefix` that this store can list (see each backend)."""

    @abstractmethod
    def abort_pending_upload(self, upload: PendingUpload) -> None:
        """Discard one unfinished upload; one that is already gone is ignored."""

    def abort_stale_uploads(
        self, prefix: str, older_than: timedelta, *, now: datetime
    ) -> list[PendingUpload]:
        """Abort the unfinished uploads under `prefix` started more than `older_than` before `now`.

        Only call this while no live writer can own them (under the cluster's lease).
        """
        cutoff = now - older_than
        stale = [u for u in self.list_pending_uploads(prefix) if u.initiated is None or u.initiated < cutoff]
        for upload in stale:
            self.abort_pending_upload(upload)
        return stale

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        return self.put(key, [data], content_type=content_type, metadata=metadata)

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.open_read(key))

    def signed_url(self, key: str, expires: timedelta) -> str:
        """A time-limited GET link to `key` that needs no credentials; `SigningUnavailable` says why not."""
        raise SigningUnavailable(f"{self.description} cannot sign download links")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


def validate_key(key: str) -> str:
    """Reject keys that would escape the prefix or that stores disagree on (empty parts, '.', '..')."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"object key must be a non-empty string, got {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: no leading/trailing/double '/', '.' or '..' parts")
    return key


def validate_list_prefix(prefix: str) -> str:
    """A list prefix may end anywhere (mid-name or after a '/'); its directory part may not climb out."""
    if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")[:-1]):
        raise ValueError(f"invalid list prefix {prefix!r}")
    return prefix


def normalize_store_prefix(prefix: str) -> str:
    """'/tenant/a/' or 'tenant/a' -> 'tenant/a/' ('' stays ''): the form object names are built from."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    validate_key(stripped)
    return stripped + "/"
