"""Amazon S3 and S3-compatible stores (MinIO, Ceph, Storj...) through a boto3 client."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kubecost_etl.storage._shared import (
    DEFAULT_LIST_PAGE_SIZE,
    DEFAULT_PART_SIZE,
    S3_MIN_PART_SIZE,
    PartUpload,
    StoreBase,
    batched,
    unquote_etag,
)
from kubecost_etl.storage.base import (
    ObjectInfo,
    PendingUpload,
    PreconditionFailed,
    SigningUnavailable,
    StorageError,
    VersionedObject,
)

MAX_PARTS = 10_000
DELETE_BATCH_SIZE = 1000  # DeleteObjects limit
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
PRESIGN_MAX_SECONDS = 7 * 86400  # SigV4 presigned URLs last at most a week
# 412 for a failed If-Match/If-None-Match; 409 when a concurrent conditional write won the race.
PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}

# botocore reads and parses the S3 service model (a large JSON) for every new session: ~0.15 s a
# client. One process makes clients for each stage and lease operation, so they share one loader
# (read-only data, cached); each client still gets its own session, so credentials never leak between them.
_LOADER: botocore.loaders.Loader | None = None
_LOADER_LOCK = threading.Lock()


def _session() -> boto3.session.Session:
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        loader = _LOADER
    core = botocore.session.get_session()
    core.register_component("data_loader", loader)
    return boto3.session.Session(botocore_session=core)


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    max_attempts: int = 5,
    s3_compatible: bool = False,
    addressing_style: str = "auto",
    signature_version: str | None = None,
    verify: bool | str | None = None,
) -> Any:
    """A boto3 S3 client with standard-mode retries (5xx, throttling); `max_attempts` counts the first try.

    `s3_compatible` switches checksums to "when_required": several S3-compatible servers
    reject the CRC checksums newer botocore sends by default.
    """
    config_options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "s3": {"addressing_style": addressing_style},
    }
    if s3_compatible:
        config_options["request_checksum_calculation"] = "when_required"
        config_options["response_checksum_validation"] = "when_required"
    if signature_version:
        config_options["signature_version"] = signature_version
    return _session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        verify=verify,
        config=Config(**config_options),
    )


class S3Store(StoreBase):
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = DEFAULT_LIST_PAGE_SIZE,
        put_extra_args: Mapping[str, Any] | None = None,
    ) -> None:
        """`put_extra_args` go to PutObject/CreateMultipartUpload (SSE, storage class, metadata)."""
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"S3 part_size must be at least {S3_MIN_PART_SIZE} bytes, got {part_size}")
        super().__init__(f"s3://{bucket}", prefix, part_size, list_page_size)
        self.client = client
        self.bucket = bucket
        self.put_extra_args = dict(put_extra_args or {})

    def _object_args(
        self, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        args = dict(self.put_extra_args)
        if content_type:
            args["ContentType"] = content_type
        if metadata:
            args["Metadata"] = {**args.get("Metadata", {}), **metadata}
        return args

    def _put_single(
        self, name: str, data: bytes, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        response = self.client.put_object(
            Bucket=self.bucket, Key=name, Body=data, **self._object_args(content_type, metadata)
        )
        return ObjectInfo(self._key(name), len(data), _etag(response), metadata=metadata)

    def _begin_upload(
        self, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> PartUpload:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=name, **self._object_args(content_type, metadata)
        )
        return _S3MultipartUpload(self, name, response["UploadId"], metadata)

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self._errors("download", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        return self._guarded_stream(body.iter_chunks(chunk_size), key, close=body.close)

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("stat", key):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
            except ClientError as exc:
                if _is_not_found(exc):
                    return None
                raise
        return ObjectInfo(
            key,
            head["ContentLength"],
            _etag(head),
            head.get("LastModified"),
            dict(head.get("Metadata") or {}),
        )

    def signed_url(self, key: str, expires: timedelta) -> str:
        seconds = int(expires.total_seconds())
        if not 0 < seconds <= PRESIGN_MAX_SECONDS:
            raise SigningUnavailable(f"S3 presigned links last 1 s to 7 days, not {expires}")
        with self._errors("sign", key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._name(key)}, ExpiresIn=seconds
            )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self._list_name_prefix(prefix),
            PaginationConfig={"PageSize": self.list_page_size},
        )
        with self._errors("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        self._key(item["Key"]), item["Size"], _etag(item), item.get("LastModified")
                    )

    def delete(self, keys: Iterable[str]) -> None:
        for batch in batched((self._name(key) for key in keys), DELETE_BATCH_SIZE):
            with self._errors("delete", self._key(batch[0])):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            # S3 reports a missing key as deleted, so any error here is real.
            errors = response.get("Errors", [])
            if errors:
                sample = ", ".join(f"{self._key(e['Key'])} ({e.get('Code')})" for e in errors[:5])
                raise StorageError(
                    f"delete failed for {len(errors)} object(s) in {self.description}: {sample}"
                )

    # --- conditional operations: S3 conditional writes (If-None-Match / If-Match) -----------

    def read_versioned(self, key: str) -> VersionedObject | None:
        with self._errors("read", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            except ClientError as exc:
                if _is_not_found(exc):
                    return None
                raise
            with response["Body"] as body:
                return VersionedObject(key, body.read(), response["ETag"])

    def create_if_absent(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        with self._errors("create", key), self._precondition("create", key):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self._name(key),
                Body=data,
                IfNoneMatch="*",
                **self._object_args(content_type),
            )
        return response["ETag"]

    def replace_if_unchanged(
        self, key: str, data: bytes, version: str, *, content_type: str | None = None
    ) -> str:
        with self._errors("replace", key), self._precondition("replace", key, missing_fails=True):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self._name(key),
                Body=data,
                IfMatch=version,
                **self._object_args(content_type),
            )
        return response["ETag"]

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        with self._errors("delete", key):
            try:
                with self._precondition("delete", key):
                    self.client.delete_object(Bucket=self.bucket, Key=self._name(key), IfMatch=version)
            except ClientError as exc:
                if _is_not_found(exc):
                    return False
                raise
            except PreconditionFailed:
                if self.stat(key) is None:  # some servers answer 412 for If-Match on a missing key
                    return False
                raise
        return True

    @contextmanager
    def _precondition(self, operation: str, key: str, *, missing_fails: bool = False) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
            if (
                code in PRECONDITION_CODES
                or status in PRECONDITION_CODES
                or (missing_fails and _is_not_found(exc))
            ):
                raise PreconditionFailed(
                    f"{operation} of {self.location(key)} refused: the object "
                    f"{'is missing or ' if missing_fails else ''}"
                    f"{'exists' if operation == 'create' else 'changed'}"
                ) from None
            raise

    def list_pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """S3 keeps unfinished multipart uploads (and bills their parts) until they are aborted."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._list_name_prefix(prefix)
        )
        with self._errors("list uploads", prefix):
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield PendingUpload(self._key(upload["Key"]), upload["UploadId"], upload.get("Initiated"))

    def abort_pending_upload(self, upload: PendingUpload) -> None:
        with self._errors("abort upload", upload.key):
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._name(upload.key), UploadId=upload.upload_id
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    def _translate_error(self, exc: Exception, operation: str, key: str) -> StorageError | None:
        if isinstance(exc, ClientError):
            if _is_not_found(exc) and operation in ("download", "stat"):
                return self._not_found(key)
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            reason = f"{error.get('Code', 'error')} (HTTP {status}): {error.get('Message', '')}".rstrip(": ")
            return self._failure(operation, key, reason)
        if isinstance(exc, BotoCoreError):
            return self._failure(operation, key, str(exc))
        return None


class _S3MultipartUpload(PartUpload):
    def __init__(
        self, store: S3Store, name: str, upload_id: str, metadata: dict[str, str] | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.upload_id = upload_id
        self.metadata = metadata
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    def add(self, part: bytes) -> None:
        part_number = len(self.parts) + 1
        if part_number > MAX_PARTS:
            raise StorageError(
                f"upload of {self.store.location(self.store._key(self.name))} needs more than {MAX_PARTS} "
                f"parts of {self.store.part_size} bytes: raise part_size"
            )
        response = self.store.client.upload_part(
            Bucket=self.store.bucket,
            Key=self.name,
            UploadId=self.upload_id,
            PartNumber=part_number,
            Body=part,
        )
        self.parts.append({"PartNumber": part_number, "ETag": response["ETag"]})
        self.size += len(part)

    def finish(self, last_part: bytes) -> ObjectInfo:
        self.add(last_part)
        response = self.store.client.complete_multipart_upload(
            Bucket=self.store.bucket,
            Key=self.name,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        return ObjectInfo(self.store._key(self.name), self.size, _etag(response), metadata=self.metadata)

    def abort(self) -> None:
        self.store.client.abort_multipart_upload(
            Bucket=self.store.bucket, Key=self.name, UploadId=self.upload_id
        )


def _is_not_found(exc: BaseException | None) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def _etag(response: Mapping[str, Any]) -> str | None:
    return unquote_etag(response.get("ETag"))
