"""A local (or mounted) directory used as an object store, Thanos' FILESYSTEM type.

Objects are written to a hidden temporary file in the target directory, fsynced, then
renamed over the key with `os.replace`, so readers see the old object or the whole new
one, never a half-written file. Keys map to paths; unlike a bucket, a key cannot be both
an object and the "directory" of other keys.

User metadata lives in a hidden sidecar file `.<name>` + `METADATA_SUFFIX` (JSON) next to the
object, never listed. An old sidecar is removed before the new object is renamed into place and
the new one written after, so metadata never describes content it was not written with (a crash
in between leaves an object without metadata, which callers treat as unknown).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG

from kubecost_etl.storage._shared import DEFAULT_LIST_PAGE_SIZE, PartUpload, StoreBase
from kubecost_etl.storage.base import (
    ObjectInfo,
    PendingUpload,
    PreconditionFailed,
    SigningUnavailable,
    StorageError,
    VersionedObject,
    validate_key,
)

TEMP_SUFFIX = ".kubecost-etl-partial"  # in-flight uploads; never listed
LOCK_SUFFIX = ".kubecost-etl-lock"  # guards conditional replace/delete of one object; never listed
METADATA_SUFFIX = ".kubecost-etl-metadata"  # an object's user metadata; never listed
DEFAULT_WRITE_SIZE = 4 * 1024 * 1024


class FilesystemStore(StoreBase):
    lists_metadata = True  # the sidecar is read while listing (a local file, no request)

    def __init__(
        self, root: str | os.PathLike[str], prefix: str = "", *, part_size: int = DEFAULT_WRITE_SIZE
    ) -> None:
        self.root = Path(root).resolve()
        super().__init__(f"file://{self.root}", prefix, part_size, DEFAULT_LIST_PAGE_SIZE)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    def _put_single(
        self, name: str, data: bytes, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        return self._begin_upload(name, content_type, metadata).finish(data)

    def _begin_upload(
        self, name: str, content_type: str | None, metadata: dict[str, str] | None = None
    ) -> PartUpload:
        return _AtomicFileUpload(self, name, metadata)

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self._errors("download", key):
            file = open(self._path(self._name(key)), "rb")  # closed by the stream when it ends
        return self._guarded_stream(iter(lambda: file.read(chunk_size), b""), key, close=file.close)

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("stat", key):
            try:
                status = self._path(self._name(key)).stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        if not S_ISREG(status.st_mode):
            return None
        with self._errors("stat", key):
            return _info(key, status, _read_metadata(self._path(self._name(key))))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        name_prefix = self._list_name_prefix(prefix)
        directory = self._path(name_prefix.rpartition("/")[0]) if "/" in name_prefix else self.root
        found: list[tuple[str, os.stat_result]] = []
        with self._errors("list", prefix):
            for dirpath, _dirnames, filenames in os.walk(directory):
                relative_dir = Path(dirpath).relative_to(self.root).as_posix()
                for filename in filenames:
                    name = filename if relative_dir == "." else f"{relative_dir}/{filename}"
                    if not name.startswith(name_prefix) or filename.endswith(
                        (TEMP_SUFFIX, LOCK_SUFFIX, METADATA_SUFFIX)
                    ):
                        continue
                    try:
                        found.append((name, os.stat(os.path.join(dirpath, filename))))
                    except FileNotFoundError:
                        pass  # deleted while we walked: a bucket listing would not show it either
        # os.walk's order is per directory; buckets list in global key order.
        for name, status in sorted(found, key=lambda item: item[0]):
            with self._errors("list", prefix):
                metadata = _read_metadata(self._path(name))
            yield _info(self._key(name), status, metadata)

    def signed_url(self, key: str, expires: timedelta) -> str:
        raise SigningUnavailable(
            f"a local directory has no download links; the file is {self._path(self._name(key))}"
        )

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            with self._errors("delete", key):
                path = self._path(self._name(key))
                path.unlink(missing_ok=True)
                _metadata_path(path).unlink(missing_ok=True)

    # --- conditional operations ----------------------------------------------------------
    # create: the content goes to a temporary file first, then link(2) gives it the key's name,
    # which fails if that name exists (atomic create-if-absent with the whole content, unlike
    # O_EXCL on the final name, which would expose a half-written file). replace and delete
    # compare the version under an exclusive flock(2) on a lock file next to the object, taken
    # by every conditional writer of that key. Shared mounts need working locks (NFSv4 does).

    def read_versioned(self, key: str) -> VersionedObject | None:
        with self._errors("read", key):
            try:
                with open(self._path(self._name(key)), "rb") as file:
                    status = os.fstat(file.fileno())
                    if not S_ISREG(status.st_mode):
                        return None
                    data = file.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        # Files are only ever replaced by rename, never rewritten in place: what one open file
        # descriptor reads is one version.
        return VersionedObject(key, data, _version(status, data))

    def create_if_absent(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        path = self._path(self._name(key))
        with self._errors("create", key):
            upload = _AtomicFileUpload(self, self._name(key))
            try:
                upload.write_temp(data)
                try:
                    os.link(upload.temp_path, path)
                except FileExistsError:
                    raise PreconditionFailed(
                        f"create of {self.location(key)} refused: the object exists"
                    ) from None
            finally:
                upload.abort()  # the temporary name only; the linked object stays
            _fsync_directory(path.parent)
            return self._current_version(path, key)

    def replace_if_unchanged(
        self, key: str, data: bytes, version: str, *, content_type: str | None = None
    ) -> str:
        path = self._path(self._name(key))
        with self._errors("replace", key), self._locked(path):
            self._expect_version(path, key, version, "replace")
            self._begin_upload(self._name(key), content_type).finish(data)
            return self._current_version(path, key)

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        path = self._path(self._name(key))
        with self._errors("delete", key):
            if not path.parent.is_dir():
                return False
            with self._locked(path):
                current = self.read_versioned(key)
                if current is None:
                    return False
                if current.version != version:
                    raise PreconditionFailed(f"delete of {self.location(key)} refused: the object changed")
                path.unlink()
                _fsync_directory(path.parent)
        return True

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock; the lock file stays (removing it would race other lockers)

    def _expect_version(self, path: Path, key: str, version: str, operation: str) -> None:
        current = self.read_versioned(key)
        if current is None or current.version != version:
            raise PreconditionFailed(
                f"{operation} of {self.location(key)} refused: the object "
                f"{'is gone' if current is None else 'changed'}"
            )

    def _current_version(self, path: Path, key: str) -> str:
        current = self.read_versioned(key)
        if current is None:
            raise StorageError(f"{self.location(key)} vanished right after it was written")
        return current.version

    def list_pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """Partial files (`.<name>.<random>.kubecost-etl-partial`) a killed writer left behind."""
        name_prefix = self._list_name_prefix(prefix)
        directory = self._path(name_prefix.rpartition("/")[0]) if "/" in name_prefix else self.root
        found: list[PendingUpload] = []
        with self._errors("list uploads", prefix):
            for dirpath, _dirnames, filenames in os.walk(directory):
                relative_dir = Path(dirpath).relative_to(self.root).as_posix()
                for filename in filenames:
                    if not filename.endswith(TEMP_SUFFIX):
                        continue
                    temp_name = filename if relative_dir == "." else f"{relative_dir}/{filename}"
                    # The object it was meant to become: ".<name>.<mkstemp random>" + suffix.
                    target = filename[1 : -len(TEMP_SUFFIX)].rpartition(".")[0]
                    name = target if relative_dir == "." else f"{relative_dir}/{target}"
                    if not name.startswith(name_prefix):
                        continue
                    try:
                        status = os.stat(os.path.join(dirpath, filename))
                    except FileNotFoundError:
                        continue  # finished or aborted meanwhile
                    found.append(
                        PendingUpload(
                            self._key(name), temp_name, datetime.fromtimestamp(status.st_mtime, UTC)
                        )
                    )
        yield from sorted(found, key=lambda upload: upload.upload_id)

    def abort_pending_upload(self, upload: PendingUpload) -> None:
        if not upload.upload_id.endswith(TEMP_SUFFIX):
            raise ValueError(f"not a partial file: {upload.upload_id!r}")
        with self._errors("abort upload", upload.key):
            self._path(validate_key(upload.upload_id)).unlink(missing_ok=True)

    def _translate_error(self, exc: Exception, operation: str, key: str) -> StorageError | None:
        if (
            isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError)
            and operation == "download"
        ):
            return self._not_found(key)
        if isinstance(exc, OSError):
            return self._failure(operation, key, f"{type(exc).__name__}: {exc.strerror or exc}")
        return None


class _AtomicFileUpload(PartUpload):
    def __init__(self, store: FilesystemStore, name: str, metadata: dict[str, str] | None = None) -> None:
        self.store = store
        self.name = name
        self.metadata = metadata
        self.path = store._path(name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX
        )
        self.temp_path = Path(temp_name)
        self.file = os.fdopen(fd, "wb")

    def add(self, part: bytes) -> None:
        self.file.write(part)

    def write_temp(self, data: bytes) -> None:
        """Write and fsync the whole content under the temporary name (not yet visible)."""
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def finish(self, last_part: bytes) -> ObjectInfo:
        try:
            self.file.write(last_part)
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            # The old sidecar goes first: it must never describe the new content.
            _metadata_path(self.path).unlink(missing_ok=True)
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        if self.metadata:
            _write_metadata(self.path, self.metadata)
        _fsync_directory(self.path.parent)  # make the renames themselves durable
        return _info(self.store._key(self.name), self.path.stat(), self.metadata)

    def abort(self) -> None:
        self.file.close()
        self.temp_path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(status: os.stat_result, data: bytes) -> str:
    return f"{status.st_ino}-{status.st_mtime_ns}-{hashlib.sha256(data).hexdigest()[:32]}"


def _metadata_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{METADATA_SUFFIX}")


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    sidecar = _metadata_path(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{sidecar.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(metadata, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, sidecar)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        text = _metadata_path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}  # a damaged sidecar is no metadata, not a crash
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _info(key: str, status: os.stat_result, metadata: dict[str, str] | None = None) -> ObjectInfo:
    return ObjectInfo(key, status.st_size, None, datetime.fromtimestamp(status.st_mtime, UTC), metadata)
