"""Checking a cluster's federated copy after each push.

- the listing matches the pod: every carried file has its object, with the pod's size and mtime in
  the object's metadata, and the sha256 each pushed file was read with;
- a rotating sample of objects is downloaded and re-hashed (against the metadata and the pod's own
  sha256), and set files' bingen headers are checked;
- a coverage summary (files, days and hours per pipeline and resolution) of what the bucket holds.

Files modified after the plan was made are reported as pending (the next run pushes them), not as faults.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field

from kubecost_etl.etl import bingen
from kubecost_etl.kube.pod_files import hash_files
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.storage.base import ObjectStore

from .layout import FederatedLayout, carried, coverage_summary, file_window
from .plan import FederatePlan, expired, pod_listing
from .push import PushResult
from .remote import RemoteFile, remote_state
from .settings import FederatedSettings


@dataclass(frozen=True)
class VerifyReport:
    cluster_id: str
    federated_id: str
    ok: bool
    objects: int  # data objects in the bucket for this cluster
    checked_files: int  # pod files compared with their objects
    rehashed: int
    pending: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    damaged: tuple[dict, ...] = ()  # bingen headers broken in the pod itself (copied as found)
    coverage: dict = field(default_factory=dict)
    location: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("pending", "problems", "damaged"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VerifyReport:
        return cls(
            **{
                **data,
                "pending": tuple(data.get("pending", ())),
                "problems": tuple(data.get("problems", ())),
                "damaged": tuple(data.get("damaged", ())),
            }
        )


def verify_push(
    core_api,
    target: ExecTarget,
    store: ObjectStore,
    settings: FederatedSettings,
    plan: FederatePlan,
    pushed: PushResult,
    sample: int | None = None,
    full: bool = False,
    now: float | None = None,
) -> VerifyReport:
    layout = FederatedLayout(settings.layout, settings.cluster_id)
    known = {p["key"]: p for p in pushed.pushed}
    state = remote_state(store, layout)
    files, _ = pod_listing(core_api, target, plan.cluster_id)
    retention = settings.retention_seconds()
    now = plan.planned_at if now is None else now
    problems: list[str] = []
    pending: list[str] = []
    checked: dict[str, RemoteFile] = {}
    for f in files:
        if not carried(f.path) or expired(f.path, retention, now):
            continue
        key = layout.key(f.path)
        remote = state.files.get(key)
        if f.mtime >= plan.planned_at and (
            remote is None or (remote.size, remote.mtime) != (f.size, f.mtime)
        ):
            pending.append(f.path)  # changed or appeared after the plan: next run's work
            continue
        if remote is None:
            problems.append(f"{f.path}: no object {key}")
        elif not remote.described:
            problems.append(f"{f.path}: object {key} carries no sha256/mtime metadata")
        elif remote.size != f.size or remote.mtime != f.mtime:
            problems.append(
                f"{f.path}: object {key} is {remote.size} bytes, mtime {remote.mtime}; "
                f"the pod's file is {f.size} bytes, mtime {f.mtime}"
            )
        elif key in known and known[key]["sha256"] != remote.sha256:
            problems.append(f"{f.path}: object {key} metadata sha256 differs from the bytes pushed")
        else:
            checked[f.path] = remote
    # A different pseudo-random sample each run (seeded by the plan's time), so every object is
    # re-read over time.
    paths = sorted(checked)
    size = len(paths) if full else min(settings.verify_sample if sample is None else sample, len(paths))
    chosen = random.Random(plan.planned_at).sample(paths, size)
    pod_digests = hash_files(core_api, target, chosen, settings.batch_files) if chosen else {}
    damaged: list[dict] = []
    for path in chosen:
        remote = checked[path]
        problem, header = _rehash(store, remote, path)
        if problem:
            problems.append(problem)
        elif pod_digests[path] != remote.sha256:
            pending.append(path)  # rewritten in place since the push with the same size and mtime second
        if header:
            damaged.append({"path": path, "reason": header})
    bucket_paths = [layout.relative_path(key) for key in state.files]
    return VerifyReport(
        plan.cluster_id,
        settings.cluster_id,
        not problems and not damaged,
        len(state.files),
        len(checked),
        len(chosen),
        tuple(sorted(set(pending))),
        tuple(problems[:100]),
        tuple(damaged[:100]),
        coverage_summary(p for p in bucket_paths if p),
        f"{store.description}/{layout.describe()}",
    )


def _rehash(store: ObjectStore, remote: RemoteFile, path: str) -> tuple[str | None, str | None]:
    digest, size, head = hashlib.sha256(), 0, bytearray()
    try:
        for piece in store.open_read(remote.key):
            digest.update(piece)
            size += len(piece)
            if len(head) < bingen.HEADER_PROBE_BYTES:
                head += piece[: bingen.HEADER_PROBE_BYTES - len(head)]
    except Exception as exc:  # any read failure is a finding of this check, not a crash
        return f"{path}: object {remote.key} cannot be read back: {exc}", None
    if size != remote.size or digest.hexdigest() != remote.sha256:
        return f"{path}: object {remote.key} content does not match its metadata sha256/size", None
    if file_window(path) is not None:
        check = bingen.check_header(bytes(head), size)
        if not check.ok:
            return None, f"bingen header check failed: {check.reason}"
    return None, None
