"""A share in two steps: ``plan_share`` (everything checked, the selection made, nothing written) and
``make_bundle`` (the files streamed into the bundle, the manifest committed, a download link made)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from kubecost_etl.etl.windows import RepairWindow, iso, resolve_window
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.snapshots.pinned import LATEST, PinnedManifest, load_pinned, resolve_snapshot
from kubecost_etl.snapshots.repository import Repository, new_snapshot_id
from kubecost_etl.storage.base import ObjectStore, StorageError

from .bundle import BUNDLE_NAME, MANIFEST_NAME, BundleResult, bundle_prefix, existing_bundle, write_bundle
from .selection import Selection, ShareRefused, select_files
from .sources import POD, pod_candidates, pod_files, snapshot_candidates, snapshot_files

log = logging.getLogger(__name__)
_LISTED = 50  # unranged / left-out paths kept in the manifest and the logs


@dataclass(frozen=True)
class ShareRequest:
    """A checked share: what the bundle task streams (the window already resolved to absolute bounds)."""

    cluster_id: str
    bundle_id: str
    source: str  # "pod" or the snapshot id ("latest" resolved)
    requested_source: str
    window: dict | None  # RepairWindow.as_dict(); None: everything
    pipelines: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    manifest_sha256: str | None = None  # the pinned snapshot's manifest
    files: int = 0
    bytes: int = 0
    unranged: tuple[str, ...] = field(default=())

    @property
    def bounds(self) -> tuple[int, int] | None:
        return (self.window["start"], self.window["end"]) if self.window else None

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # JSON shapes

    @classmethod
    def from_dict(cls, data: dict) -> ShareRequest:
        return cls(
            **{
                **data,
                "pipelines": tuple(data["pipelines"]),
                "resolutions": tuple(data["resolutions"]),
                "unranged": tuple(data.get("unranged", ())),
            }
        )


def share_window(text: str | None, now: float, max_days: int) -> RepairWindow | None:
    """Kubecost's window syntax with the repair's refusals; empty means everything (None)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return resolve_window(text, now, max_days)


def _filters(values, name: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [v for v in values.replace(",", " ").split() if v]
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) and v for v in values):
        raise ShareRefused(f"{name}: expected a list of names, got {values!r}")
    return tuple(sorted(set(values)))


def pin_snapshot(repo: Repository, source: str, created_before: datetime) -> PinnedManifest:
    snapshot_id = resolve_snapshot(repo, source, created_before)
    return load_pinned(repo, snapshot_id)


def plan_share(
    cluster_id: str,
    source: str,
    window: RepairWindow | None,
    pipelines,
    resolutions,
    *,
    repo: Repository | None,
    core_api=None,
    target: ExecTarget | None = None,
    created_before: datetime | None = None,
) -> tuple[ShareRequest, Selection]:
    """Check the source and make the selection; refuses an empty one. Writes nothing."""
    pipelines, resolutions = _filters(pipelines, "pipelines"), _filters(resolutions, "resolutions")
    if not isinstance(source, str) or not source.strip():
        raise ShareRefused(f"source: give 'pod', '{LATEST}' or a snapshot id of cluster {cluster_id!r}")
    source = source.strip()
    pinned = None
    if source == POD:
        if target is None:
            raise ValueError("a pod source needs the exec target")
        candidates = pod_candidates(core_api, target)
        where = f"cluster {cluster_id!r}, pod {target.pod.namespace}/{target.pod.name} ({target.etl_root})"
    else:
        pinned = pin_snapshot(repo, source, created_before or datetime.now(UTC))
        candidates = snapshot_candidates(pinned)
        where = f"cluster {cluster_id!r}, snapshot {pinned.manifest.snapshot_id} in {repo.description}"
    bounds = (window.start, window.end) if window else None
    selection = select_files(candidates, bounds, pipelines, resolutions, where)
    request = ShareRequest(
        cluster_id=cluster_id,
        bundle_id=new_snapshot_id(),
        requested_source=source,
        source=POD if pinned is None else pinned.manifest.snapshot_id,
        window=window.as_dict() if window else None,
        pipelines=pipelines,
        resolutions=resolutions,
        manifest_sha256=pinned.sha256 if pinned else None,
        files=len(selection.files),
        bytes=selection.total_bytes,
        unranged=selection.unranged[:_LISTED],
    )
    scope = (
        f"{window.text!r} = [{iso(window.start)}, {iso(window.end)})" if window else "everything (no window)"
    )
    log.info(
        "share of %s: %s; %d file(s), %.1f MB, %d day(s)",
        where,
        scope,
        len(selection.files),
        selection.total_bytes / 1e6,
        selection.days(bounds),
    )
    for path in selection.unranged[:_LISTED]:
        log.info("carried although its name has no time range: %s", path)
    for note in selection.left_out[:_LISTED]:
        log.info("not carried: %s", note)
    return request, selection


def make_bundle(
    request: ShareRequest,
    *,
    repo: Repository | None,
    share_store: ObjectStore,
    level: int,
    link_hours: int,
    batch_files: int = 400,
    core_api=None,
    target: ExecTarget | None = None,
    now: datetime | None = None,
) -> BundleResult:
    """Stream the selection into the bundle (the selection is made again from the source the request
    pinned), commit its manifest and sign a download link. A bundle an earlier attempt committed is
    reported, not written again."""
    prefix = bundle_prefix(request.cluster_id, request.bundle_id)
    manifest = existing_bundle(share_store, request.cluster_id, request.bundle_id)
    if manifest is not None:
        log.info("bundle %s was committed by an earlier attempt", prefix)
        return _result(request, share_store, manifest, link_hours, now)
    window = request.bounds
    vanished: list[str] = []
    if request.source == POD:
        _, selection = plan_share(
            request.cluster_id,
            POD,
            _window(request),
            request.pipelines,
            request.resolutions,
            repo=repo,
            core_api=core_api,
            target=target,
        )
        files = pod_files(core_api, target, list(selection.files), batch_files, vanished)
        source = {
            "kind": "pod",
            "namespace": target.pod.namespace,
            "pod": target.pod.name,
            "container": target.container,
            "etl_root": target.etl_root,
        }
    else:
        pinned = load_pinned(repo, request.source, request.manifest_sha256)
        selection = select_files(
            snapshot_candidates(pinned),
            window,
            request.pipelines,
            request.resolutions,
            f"snapshot {request.source}",
        )
        files = snapshot_files(repo, pinned, list(selection.files))
        source = {
            "kind": "snapshot",
            "snapshot_id": request.source,
            "manifest_sha256": request.manifest_sha256,
            "repository": repo.description,
        }
    describe = {
        "bundle_id": request.bundle_id,
        "cluster": request.cluster_id,
        "source": source,
        "requested_source": request.requested_source,
        "window": None
        if request.window is None
        else {
            **request.window,
            "start_utc": iso(request.window["start"]),
            "end_utc": iso(request.window["end"]),
        },
        "filters": {"pipelines": list(request.pipelines), "resolutions": list(request.resolutions)},
        "days": selection.days(window),
        "unranged": list(selection.unranged[:_LISTED]),
        "left_out": list(selection.left_out[:_LISTED]),
        "created_at": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest, _ = write_bundle(share_store, request.cluster_id, request.bundle_id, files, describe, level)
    if vanished:
        log.warning(
            "%d file(s) left the pod while the bundle was made (not in it): %s",
            len(vanished),
            vanished[:_LISTED],
        )
    return _result(request, share_store, manifest, link_hours, now)


def _window(request: ShareRequest) -> RepairWindow | None:
    return RepairWindow.from_dict(request.window) if request.window else None


def _result(
    request: ShareRequest, store: ObjectStore, manifest: dict, link_hours: int, now: datetime | None
) -> BundleResult:
    prefix = bundle_prefix(request.cluster_id, request.bundle_id)
    key = prefix + BUNDLE_NAME
    link = expires = None
    note = ""
    try:
        link = store.signed_url(key, timedelta(hours=link_hours))
        expires = ((now or datetime.now(UTC)) + timedelta(hours=link_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except StorageError as exc:  # SigningUnavailable, or the store refused
        note = str(exc)
    bundle = manifest["bundle"]
    return BundleResult(
        cluster_id=request.cluster_id,
        bundle_id=request.bundle_id,
        key=key,
        manifest_key=prefix + MANIFEST_NAME,
        location=f"{store.description.rstrip('/')}/{key}",
        size=bundle["size"],
        sha256=bundle["sha256"],
        files=manifest["counts"]["files"],
        days=manifest["days"],
        bytes=manifest["counts"]["bytes"],
        link=link,
        link_expires_at=expires,
        link_note=note,
    )
