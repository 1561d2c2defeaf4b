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

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG

from kubecost_etl.storage._shared import DEFAULT_LIST_PAGE_SIZE, PartUpload, StoreBase
from kubecost_etl.storage.base import ObjectInfo, SigningUnavailable, StorageError

TEMP_SUFFIX = ".kubecost-etl-partial"  # in-flight uploads; never listed
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
                    if not name.startswith(name_prefix) or filename.endswith((TEMP_SUFFIX, METADATA_SUFFIX)):
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
