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
