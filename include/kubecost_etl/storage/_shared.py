"""What every backend shares: prefix mapping, the streaming upload template, error translation.

A backend supplies the SDK calls (`_put_single`, `_begin_upload` returning a `PartUpload`,
`_translate_error`); this module decides when to use a single PUT or a multipart upload,
keeps memory to about one part, and makes sure a failed upload is aborted.
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from kubecost_etl.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    normalize_store_prefix,
    validate_key,
    validate_list_prefix,
)

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 16 * 1024 * 1024
DEFAULT_LIST_PAGE_SIZE = 1000
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Provider limits, here rather than in s3.py/gcs.py so that objstore_config can check a file
# without importing either SDK.
S3_MIN_PART_SIZE = 5 * 1024 * 1024  # S3 rejects smaller non-final parts
GCS_CHUNK_ALIGNMENT = 256 * 1024  # resumable upload chunks must be multiples of this


def iter_parts(chunks: Iterable[bytes], part_size: int) -> Iterator[tuple[bytes, bool]]:
    """Regroup `chunks` into `(part, is_last)` pairs of exactly `part_size` bytes (the last may be shorter).

    A part is only released once more data is known to follow, so the caller learns which part
    is the last one without holding a second part in memory. Always yields at least one
    (possibly empty) part.
    """
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        # Strictly greater: a buffer of exactly part_size might be the last part.
        while len(buffer) > part_size:
            with memoryview(buffer) as view:  # one copy into the part, not two
                part = bytes(view[:part_size])
            del buffer[:part_size]
            yield part, False
            del part
    yield bytes(buffer), True


class PartUpload(ABC):
    """One in-progress multipart/block/resumable upload."""

    @abstractmethod
    def add(self, part: bytes) -> None: ...

    @abstractmethod
    def finish(self, last_part: bytes) -> ObjectInfo:
        """Send the last part and make the object visible."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything sent so far; the object must not become visible."""


class StoreBase(ObjectStore):
    """Shared machinery for the concrete stores."""

    def __init__(self, description: str, prefix: str, part_size: int, list_page_size: int) -> None:
        if part_size <= 0 or list_page_size <= 0:
            raise ValueError("part_size and list_page_size must be positive")
        self.prefix = normalize_store_prefix(prefix)
        self.description = description.rstrip("/") + ("/" + self.prefix.rstrip("/") if self.prefix else "")
        self.part_size = part_size
        self.list_page_size = list_page_size

    # --- backend hooks -------------------------------------------------------------------

    @abstractmethod
    def _put_single(
        self, name: str, data: bytes, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        """Upload a whole (small) object in one request. `name` includes the prefix."""

    @abstractmethod
    def _begin_upload(
        self, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> PartUpload: ...

    @abstractmethod
    def _translate_error(self, exc: Exception, operation: str, key: str) -> StorageError | None:
        """Map an SDK exception to a StorageError (None: not an SDK error, let it propagate)."""

    # --- shared behaviour ----------------------------------------------------------------

    def put(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        name = self._name(key)
        parts = iter_parts(chunks, self.part_size)
        # Parts are pulled from the producer outside `_errors`: its own failures pass through as they are.
        part, is_last = next(parts)
        with self._errors("upload", key):
            if is_last:
                return self._put_single(name, part, content_type, metadata)
            upload = self._begin_upload(name, content_type, metadata)
        # One part is sent (in order, by one sender thread) while the producer fills the next one:
        # reading, compressing and uploading overlap, and memory stays at about two parts.
        sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-sender")
        sending: Future | None = None
        try:
            while not is_last:
                sending = sender.submit(self._send_part, upload, part, key)
                part = b""  # the sender holds the part; release ours before the producer fills the next one
                part, is_last = next(parts)
                sending.result()
                sending = None
            with self._errors("upload", key):
                return upload.finish(part)
        except BaseException:
            if sending is not None:
                wait([sending])  # a request in flight cannot be recalled: let it end before aborting
            self._abort_quietly(upload, key)
            raise
        finally:
            sender.shutdown(wait=True)

    def _send_part(self, upload: PartUpload, part: bytes, key: str) -> None:
        with self._errors("upload", key):
            upload.add(part)

    def _abort_quietly(self, upload: PartUpload, key: str) -> None:
        # The original error matters more than a failed clean-up; log it and move on.
        try:
            upload.abort()
        except Exception:
            log.warning("could not abort the partial upload of %s", self.location(key), exc_info=True)

    def location(self, key: str) -> str:
        return f"{self.description}/{key}"

    def at_root(self) -> StoreBase:
        """The same bucket through the same client, without this store's prefix (keys are full
        object names).
        """
        twin = copy.copy(self)
        if self.prefix:
            twin.description = self.description[: -len(self.prefix)]  # drops "/<prefix>"
            twin.prefix = ""
        return twin

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _list_name_prefix(self, prefix: str) -> str:
        return self.prefix + validate_list_prefix(prefix)

    def _key(self, name: str) -> str:
        return name[len(self.prefix) :]

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(self.location(key))

    def _failure(self, operation: str, key: str, reason: str) -> StorageError:
        target = self.location(key) if key else self.description
        return StorageError(f"{operation} failed for {target}: {reason}")

    @contextmanager
    def _errors(self, operation: str, key: str = "") -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            translated = self._translate_error(exc, operation, key)
            if translated is None:
                raise
            raise translated from exc

    def _guarded_stream(
        self, chunks: Iterator[bytes], key: str, close: Callable[[], None] | None = None
    ) -> Iterator[bytes]:
        """Wrap a download's chunk iterator: translate mid-stream errors and always release the source."""
        try:
            with self._errors("download", key):
                yield from chunks
        finally:
            if close is not None:
                close()


def ranged_chunks(
    fetch_range: Callable[[int, int], bytes], size: int, range_size: int, chunk_size: int, location: str
) -> Iterator[bytes]:
    """Download `size` bytes as consecutive ranged requests (`fetch_range(start, length)`).

    Memory stays at one range; yielded chunks are at most `chunk_size` bytes.
    """
    for start in range(0, size, range_size):
        length = min(range_size, size - start)
        data = fetch_range(start, length)
        if len(data) != length:
            raise StorageError(f"short read from {location}: {len(data)} of {length} bytes at offset {start}")
        with memoryview(data) as view:
            for offset in range(0, length, chunk_size):
                yield bytes(view[offset : offset + chunk_size])


def unquote_etag(etag: str | None) -> str | None:
    """S3 and Azure return ETags in double quotes; ObjectInfo carries them bare."""
    return etag.strip('"') if etag else None


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
