"""Azure Blob Storage through an azure-storage-blob `ContainerClient`.

Large objects are staged as blocks and made visible by one commit of the block list;
uncommitted blocks are never visible and Azure discards them after a week, so an aborted
upload needs no clean-up request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobProperties,
    BlobSasPermissions,
    ContainerClient,
    ContentSettings,
    generate_blob_sas,
)

from kubecost_etl.storage._shared import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_LIST_PAGE_SIZE,
    DEFAULT_PART_SIZE,
    PartUpload,
    StoreBase,
    batched,
    ranged_chunks,
    unquote_etag,
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

DELETE_BATCH_SIZE = 256  # Blob Batch limit
DELETE_OK_STATUSES = {202, 404}  # a missing blob is fine


class AzureStore(StoreBase):
    lists_metadata = True  # list_blobs(include=["metadata"]) carries it in the same pages

    def __init__(
        self,
        container: ContainerClient,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = DEFAULT_LIST_PAGE_SIZE,
    ) -> None:
        super().__init__(
            f"azure://{container.account_name}/{container.container_name}", prefix, part_size, list_page_size
        )
        self.container = container

    def _put_single(
        self, name: str, data: bytes, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        response = self.container.get_blob_client(name).upload_blob(
            data, overwrite=True, content_settings=_content_settings(content_type), metadata=metadata
        )
        etag = unquote_etag(response["etag"])
        return ObjectInfo(self._key(name), len(data), etag, response.get("last_modified"), metadata)

    def _begin_upload(
        self, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> PartUpload:
        return _AzureBlockUpload(self, name, content_type, metadata)

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        blob = self.container.get_blob_client(self._name(key))
        with self._errors("download", key):
            properties = blob.get_blob_properties()

        # Pin every range to the version we saw: a concurrent overwrite fails the read
        # instead of splicing two versions together.
        def fetch_range(start: int, length: int) -> bytes:
            return blob.download_blob(
                offset=start,
                length=length,
                etag=properties.etag,
                match_condition=MatchConditions.IfNotModified,
            ).readall()

        chunks = ranged_chunks(fetch_range, properties.size, self.part_size, chunk_size, self.location(key))
        return self._guarded_stream(chunks, key)

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("stat", key):
            try:
                properties = self.container.get_blob_client(self._name(key)).get_blob_properties()
            except ResourceNotFoundError:
                return None
        return _info(key, properties)

    def signed_url(self, key: str, expires: timedelta) -> str:
        """A read-only blob SAS signed with the account key (a SAS-token or Entra ID client has none)."""
        account_key = getattr(self.container.credential, "account_key", None)
        if not account_key:
            raise SigningUnavailable(
                f"{self.description}: no storage account key to sign a SAS with "
                "(the store is reached with a SAS token, Entra ID or no credential)"
            )
        blob = self.container.get_blob_client(self._name(key))
        sas = generate_blob_sas(
            account_name=self.container.account_name,
            container_name=self.container.container_name,
            blob_name=blob.blob_name,
            account_key=account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + expires,
        )
        return f"{blob.url}?{sas}"

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._errors("list", prefix):
            blobs = self.container.list_blobs(
                name_starts_with=self._list_name_prefix(prefix),
                results_per_page=self.list_page_size,
                include=["metadata"],
            )
            for properties in blobs:
                yield _info(self._key(properties.name), properties)

    def delete(self, keys: Iterable[str]) -> None:
        for batch in batched((self._name(key) for key in keys), DELETE_BATCH_SIZE):
            with self._errors("delete", self._key(batch[0])):
                responses = list(self.container.delete_blobs(*batch, raise_on_any_failure=False))
            failed = [
                f"{self._key(name)} (HTTP {response.status_code})"
                for name, response in zip(batch, responses, strict=True)
                if response.status_code not in DELETE_OK_STATUSES
            ]
            if failed:
                raise StorageError(
                    f"delete failed for {len(failed)} object(s) in {self.description}: "
                    f"{', '.join(failed[:5])}"
                )

    # --- conditional operations: If-None-Match: * and If-Match: <etag> -----------------------

    def read_versioned(self, key: str) -> VersionedObject | None:
        with self._errors("read", key):
            try:
                downloader = self.container.get_blob_client(self._name(key)).download_blob()
            except ResourceNotFoundError:
                return None
            # One GET for a small blob; larger ones are fetched in ranges pinned to the first etag.
            return VersionedObject(key, downloader.readall(), downloader.properties.etag)

    def create_if_absent(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        with self._errors("create", key):
            try:  # overwrite=False sends If-None-Match: *
                response = self.container.get_blob_client(self._name(key)).upload_blob(
                    data, overwrite=False, content_settings=_content_settings(content_type)
                )
            except (ResourceExistsError, ResourceModifiedError):
                raise PreconditionFailed(
                    f"create of {self.location(key)} refused: the object exists"
                ) from None
        return response["etag"]

    def replace_if_unchanged(
        self, key: str, data: bytes, version: str, *, content_type: str | None = None
    ) -> str:
        with self._errors("replace", key):
            try:
                response = self.container.get_blob_client(self._name(key)).upload_blob(
                    data,
                    overwrite=True,
                    content_settings=_content_settings(content_type),
                    etag=version,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                raise PreconditionFailed(
                    f"replace of {self.location(key)} refused: the object changed or is gone"
                ) from None
        return response["etag"]

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        with self._errors("delete", key):
            try:
                self.container.get_blob_client(self._name(key)).delete_blob(
                    etag=version, match_condition=MatchConditions.IfNotModified
                )
            except ResourceNotFoundError:
                return False
            except ResourceModifiedError:
                # If-Match on a missing blob also answers 412: tell "gone" from "changed".
                if self.stat(key) is None:
                    return False
                raise PreconditionFailed(
                    f"delete of {self.location(key)} refused: the object changed"
                ) from None
        return True

    def list_pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """None to list: uncommitted blocks are invisible and Azure discards them after a week by itself."""
        validate_list_prefix(prefix)
        return iter(())

    def abort_pending_upload(self, upload: PendingUpload) -> None:
        """Nothing to do (see list_pending_uploads)."""

    def _translate_error(self, exc: Exception, operation: str, key: str) -> StorageError | None:
        if isinstance(exc, ResourceNotFoundError) and operation == "download":
            return self._not_found(key)
        if isinstance(exc, HttpResponseError):
            code = (
                getattr(exc.error_code, "value", exc.error_code) or "error"
            )  # may be a StorageErrorCode enum
            first_line = exc.message.splitlines()[0] if exc.message else ""
            return self._failure(operation, key, f"{code} (HTTP {exc.status_code}): {first_line}")
        if isinstance(exc, AzureError):
            return self._failure(operation, key, f"{type(exc).__name__}: {exc.message}")
        return None


class _AzureBlockUpload(PartUpload):
    def __init__(
        self, store: AzureStore, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.content_type = content_type
        self.metadata = metadata
        self.blob = store.container.get_blob_client(name)
        # A per-upload token keeps our block ids apart from blocks a failed earlier attempt left behind.
        self.token = uuid.uuid4().hex
        self.block_ids: list[str] = []
        self.size = 0

    def add(self, part: bytes) -> None:
        block_id = f"{self.token}-{len(self.block_ids):06d}"  # all ids of a blob must have one length
        self.blob.stage_block(block_id, part, length=len(part))
        self.block_ids.append(block_id)
        self.size += len(part)

    def finish(self, last_part: bytes) -> ObjectInfo:
        self.add(last_part)
        response = self.blob.commit_block_list(
            [BlobBlock(block_id=block_id) for block_id in self.block_ids],
            content_settings=_content_settings(self.content_type),
            metadata=self.metadata,
        )
        return ObjectInfo(
            self.store._key(self.name),
            self.size,
            unquote_etag(response["etag"]),
            response.get("last_modified"),
            self.metadata,
        )

    def abort(self) -> None:
        """Nothing to do: uncommitted blocks are invisible and expire on their own."""


def _content_settings(content_type: str | None) -> ContentSettings:
    return ContentSettings(content_type=content_type or DEFAULT_CONTENT_TYPE)


def _info(key: str, properties: BlobProperties) -> ObjectInfo:
    return ObjectInfo(
        key,
        properties.size,
        unquote_etag(properties.etag),
        properties.last_modified,
        dict(properties.metadata or {}),
    )
