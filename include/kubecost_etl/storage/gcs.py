"""Google Cloud Storage through a google-cloud-storage `Client`.

Large objects go up as one resumable upload sent in `part_size` chunks (a multiple of
256 KiB, as GCS demands); an aborted upload is cancelled, so no object appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import requests
from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.api_core.exceptions import PreconditionFailed as GooglePreconditionFailed
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from kubecost_etl.storage._shared import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_LIST_PAGE_SIZE,
    DEFAULT_PART_SIZE,
    GCS_CHUNK_ALIGNMENT,
    PartUpload,
    StoreBase,
    batched,
    ranged_chunks,
)
from kubecost_etl.storage.base import (
    ObjectInfo,
    PendingUpload,
    PreconditionFailed,
    SigningUnavailable,
    StorageError,
    VersionedObject,
    validate_list_prefix,
)

DELETE_BATCH_SIZE = 100  # the JSON API's recommended batch size
SDK_ERRORS = (GoogleAPICallError, GoogleAuthError, InvalidResponse, DataCorruption, requests.RequestException)


class GCSStore(StoreBase):
    lists_metadata = True  # objects.list returns each object's metadata

    def __init__(
        self,
        client: storage.Client,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = DEFAULT_LIST_PAGE_SIZE,
    ) -> None:
        if part_size % GCS_CHUNK_ALIGNMENT:
            raise ValueError(
                f"GCS part_size must be a multiple of {GCS_CHUNK_ALIGNMENT} bytes, got {part_size}"
            )
        super().__init__(f"gs://{bucket}", prefix, part_size, list_page_size)
        self.client = client
        self.bucket = client.bucket(bucket)

    def _put_single(
        self, name: str, data: bytes, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        blob = self.bucket.blob(name)
        if metadata:
            blob.metadata = dict(metadata)  # sent with the upload request itself
        blob.upload_from_string(data, content_type=content_type or DEFAULT_CONTENT_TYPE)
        return _info(self._key(name), blob)

    def _begin_upload(
        self, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> PartUpload:
        blob = self.bucket.blob(name)
        if metadata:
            blob.metadata = dict(metadata)  # part of the resumable session's initial request
        writer = blob.open(
            "wb",
            chunk_size=self.part_size,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            ignore_flush=True,
        )
        return _GCSResumableUpload(self, blob, writer)

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self._errors("download", key):
            blob = self.bucket.get_blob(self._name(key))
        if blob is None:
            raise self._not_found(key)

        # `blob` carries its generation, so every range reads the same version of the object.
        def fetch_range(start: int, length: int) -> bytes:
            return blob.download_as_bytes(start=start, end=start + length - 1, checksum=None)

        chunks = ranged_chunks(fetch_range, blob.size, self.part_size, chunk_size, self.location(key))
        return self._guarded_stream(chunks, key)

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("stat", key):
            blob = self.bucket.get_blob(self._name(key))
        return None if blob is None else _info(key, blob)

    def signed_url(self, key: str, expires: timedelta) -> str:
        """A V4 signed URL; needs credentials that can sign (a service account key, or IAM signBlob)."""
        try:
            return self.bucket.blob(self._name(key)).generate_signed_url(
                version="v4", expiration=expires, method="GET"
            )
        except (AttributeError, TypeError, ValueError, GoogleAuthError) as exc:
            # The library raises AttributeError for credentials without a private key (user, anonymous).
            raise SigningUnavailable(
                f"{self.description}: the credentials cannot sign URLs ({type(exc).__name__}); "
                "use a service account key"
            ) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._errors("list", prefix):
            blobs = self.client.list_blobs(
                self.bucket, prefix=self._list_name_prefix(prefix), page_size=self.list_page_size
            )
            for blob in blobs:
                yield _info(self._key(blob.name), blob)

    def delete(self, keys: Iterable[str]) -> None:
        for batch in batched((self._name(key) for key in keys), DELETE_BATCH_SIZE):
            with self._errors("delete", self._key(batch[0])):
                try:
                    with self.client.batch():
                        for name in batch:
                            self.bucket.delete_blob(name)
                except NotFound:
                    # A batch raises for its last failed call only; redo this batch one by one
                    # so a missing key is skipped and any other failure still surfaces.
                    for name in batch:
                        try:
                            self.bucket.delete_blob(name)
                        except NotFound:
                            pass

    # --- conditional operations: generation preconditions (ifGenerationMatch) ---------------

    def read_versioned(self, key: str) -> VersionedObject | None:
        with self._errors("read", key):
            for _ in range(5):
                blob = self.bucket.get_blob(self._name(key))
                if blob is None:
                    return None
                generation = blob.generation  # kept: a download may reset the blob's properties
                try:  # pinned to the generation just seen: a concurrent overwrite fails the read
                    data = blob.download_as_bytes(if_generation_match=generation)
                except (NotFound, GooglePreconditionFailed):
                    continue  # replaced or deleted between the two calls: look again
                return VersionedObject(key, data, str(generation))
        raise StorageError(f"read of {self.location(key)} kept changing under five reads")

    def create_if_absent(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        return self._conditional_upload("create", key, data, 0, content_type)

    def replace_if_unchanged(
        self, key: str, data: bytes, version: str, *, content_type: str | None = None
    ) -> str:
        return self._conditional_upload("replace", key, data, _generation(version), content_type)

    def _conditional_upload(
        self, operation: str, key: str, data: bytes, generation: int, content_type: str | None
    ) -> str:
        blob = self.bucket.blob(self._name(key))
        with self._errors(operation, key):
            try:
                blob.upload_from_string(
                    data, content_type=content_type or DEFAULT_CONTENT_TYPE, if_generation_match=generation
                )
            except GooglePreconditionFailed:
                raise PreconditionFailed(
                    f"{operation} of {self.location(key)} refused: precondition failed"
                ) from None
        return str(blob.generation)

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        with self._errors("delete", key):
            try:
                self.bucket.blob(self._name(key)).delete(if_generation_match=_generation(version))
            except NotFound:
                return False
            except GooglePreconditionFailed:
                raise PreconditionFailed(
                    f"delete of {self.location(key)} refused: the object changed"
                ) from None
        return True

    def list_pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """None to list: GCS has no API listing resumable sessions; an abandoned one expires by itself
        after a week and never becomes an object."""
        validate_list_prefix(prefix)
        return iter(())

    def abort_pending_upload(self, upload: PendingUpload) -> None:
        raise StorageError(
            f"GCS resumable sessions cannot be aborted by listing ({self.location(upload.key)})"
        )

    def _translate_error(self, exc: Exception, operation: str, key: str) -> StorageError | None:
        if isinstance(exc, NotFound) and operation == "download":
            return self._not_found(key)
        if isinstance(exc, GoogleAPICallError):
            return self._failure(operation, key, f"HTTP {exc.code}: {exc.message}")
        if isinstance(exc, SDK_ERRORS):
            return self._failure(operation, key, f"{type(exc).__name__}: {exc}")
        return None


class _GCSResumableUpload(PartUpload):
    def __init__(self, store: GCSStore, blob: storage.Blob, writer: Any) -> None:
        self.store = store
        self.blob = blob
        self.writer = writer
        self.size = 0

    def add(self, part: bytes) -> None:
        self.writer.write(part)  # sends every complete chunk at once
        self.size += len(part)

    def finish(self, last_part: bytes) -> ObjectInfo:
        self.add(last_part)
        self.writer.close()  # the final chunk states the total size and commits the object
        self.blob.reload()
        if self.blob.size != self.size:
            raise StorageError(
                f"upload of {self.store.location(self.store._key(self.blob.name))} stored "
                f"{self.blob.size} bytes, {self.size} were sent"
            )
        return _info(self.store._key(self.blob.name), self.blob)

    def abort(self) -> None:
        self.writer.terminate()  # DELETE on the resumable session URL


def _generation(version: str) -> int:
    if not version.isdigit():
        raise ValueError(f"not a GCS generation: {version!r}")
    return int(version)


def _info(key: str, blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(key, blob.size or 0, blob.etag, blob.updated, dict(blob.metadata or {}))
