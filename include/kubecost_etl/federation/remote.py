"""What the bucket holds for a cluster: every data object with its size and the sha256 and source mtime
kept in its metadata.

GCS, Azure and the filesystem store return metadata in their listings. S3's ListObjectsV2 does not, so
for S3 a small index object (``<root>/kubecost-etl-index.json``) keeps each key's metadata next to the
ETag it was recorded for. An index entry is trusted only while the listing still shows that ETag for
the key (so an object replaced by anyone else is noticed); any other object costs one HEAD. A run that
changes nothing reads the index and writes nothing; a run that uploads rewrites it once, after the data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from kubecost_etl.storage.base import ObjectInfo, ObjectNotFound, ObjectStore

from .layout import META_MTIME, META_SHA256, FederatedLayout

log = logging.getLogger(__name__)
INDEX_VERSION = 1


@dataclass(frozen=True)
class RemoteFile:
    key: str
    size: int
    etag: str | None
    sha256: str | None  # None: the object carries no (readable) metadata of ours
    mtime: int | None

    @property
    def described(self) -> bool:
        return self.sha256 is not None and self.mtime is not None


def metadata_for(sha256: str, mtime: int) -> dict[str, str]:
    return {META_SHA256: sha256, META_MTIME: str(int(mtime))}


def _from_metadata(info: ObjectInfo, metadata: dict[str, str] | None) -> RemoteFile:
    metadata = {k.lower(): v for k, v in (metadata or {}).items()}
    sha256, mtime = metadata.get(META_SHA256), metadata.get(META_MTIME)
    valid_sha = isinstance(sha256, str) and len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)
    valid_mtime = isinstance(mtime, str) and mtime.lstrip("-").isdigit()
    return RemoteFile(
        info.key, info.size, info.etag, sha256 if valid_sha else None, int(mtime) if valid_mtime else None
    )


def read_index(store: ObjectStore, layout: FederatedLayout) -> dict[str, dict]:
    try:
        raw = json.loads(store.read_bytes(layout.index_key))
    except ObjectNotFound:
        return {}
    except ValueError:
        log.warning("index %s is not JSON; ignoring it (objects are checked one by one)", layout.index_key)
        return {}
    entries = raw.get("entries") if isinstance(raw, dict) and raw.get("version") == INDEX_VERSION else None
    return entries if isinstance(entries, dict) else {}


@dataclass
class RemoteState:
    files: dict[str, RemoteFile]  # by key
    index: dict[str, dict]  # the index as read (empty when the store lists metadata)
    heads: int = 0  # per-object metadata requests it took

    def index_entries(self, updates: dict[str, RemoteFile] | None = None) -> dict[str, dict]:
        merged = {**self.files, **(updates or {})}
        return {
            key: {"etag": f.etag, "size": f.size, META_SHA256: f.sha256, META_MTIME: f.mtime}
            for key, f in sorted(merged.items())
            if f.etag and f.described
        }


def remote_state(
    store: ObjectStore, layout: FederatedLayout, known: dict[str, RemoteFile] | None = None
) -> RemoteState:
    """Every data object under the cluster's ``etl/bingen/`` with its recorded sha256 and mtime.

    ``known``: objects this run has just written (their ETags come back from the upload), so no HEAD.
    """
    listing = list(store.list(layout.data_prefix))
    if store.lists_metadata:
        return RemoteState({info.key: _from_metadata(info, info.metadata) for info in listing}, {})
    index = read_index(store, layout)
    state = RemoteState({}, index)
    known = known or {}
    for info in listing:
        entry = index.get(info.key)
        mine = known.get(info.key)
        if mine is not None and info.etag and mine.etag == info.etag and mine.size == info.size:
            state.files[info.key] = mine
            continue
        if entry and info.etag and entry.get("etag") == info.etag and entry.get("size") == info.size:
            state.files[info.key] = _from_metadata(info, {k: str(v) for k, v in entry.items()})
            continue
        stat = store.stat(info.key)  # one HEAD: not in the index, or replaced since it was recorded
        state.heads += 1
        if stat is not None:
            state.files[info.key] = _from_metadata(stat, stat.metadata)
    return state


def write_index(
    store: ObjectStore, layout: FederatedLayout, state: RemoteState, updates: dict[str, RemoteFile]
) -> bool:
    """Record the keys' metadata for stores whose listing lacks it; writes only when something changed."""
    if store.lists_metadata:
        return False
    entries = state.index_entries(updates)
    # Entries of deleted keys may linger until the next write: they are bound to ETags, never trusted blindly.
    if all(state.index.get(key) == entry for key, entry in entries.items()):
        return False
    body = json.dumps({"version": INDEX_VERSION, "entries": entries}, sort_keys=True).encode()
    store.put_bytes(layout.index_key, body, content_type="application/json")
    return True


def uploaded_file(info: ObjectInfo, sha256: str, mtime: int) -> RemoteFile:
    return RemoteFile(info.key, info.size, info.etag, sha256, int(mtime))
