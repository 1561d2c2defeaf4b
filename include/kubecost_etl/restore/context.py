"""The restore run's context: what preflight decided, handed to every later stage (XCom: ``as_dict``)."""

from __future__ import annotations

from dataclasses import dataclass

from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore.pod_dirs import RestoreDirs


@dataclass(frozen=True)
class RestoreContext:
    cluster_id: str
    snapshot_id: str
    manifest_sha256: str  # the pinned manifest: every stage re-checks it
    mode: str
    restart: bool
    dry_run: bool
    token: str  # names this run's dirs next to the ETL dir (see pod_dirs)
    target: ExecTarget  # where preflight found the files; later stages re-resolve after a restart
    files: int
    bytes: int
    leftovers: tuple[str, ...] = ()
    # snapshot, or a mirror (federated | durable): then snapshot_id names the mirror
    # ("<source>-<federated id>") and manifest_sha256 pins its listing
    # (``restore.mirror.MirrorListing.digest``)
    source: str = "snapshot"

    @property
    def from_mirror(self) -> bool:
        return self.source != "snapshot"

    @property
    def dirs(self) -> RestoreDirs:
        return RestoreDirs(self.target.etl_root, self.token)

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "snapshot_id": self.snapshot_id,
            "manifest_sha256": self.manifest_sha256,
            "mode": self.mode,
            "restart": self.restart,
            "dry_run": self.dry_run,
            "token": self.token,
            "target": self.target.as_dict(),
            "dirs": self.dirs.as_dict(),
            "files": self.files,
            "bytes": self.bytes,
            "leftovers": list(self.leftovers),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict | RestoreContext) -> RestoreContext:
        if isinstance(data, RestoreContext):
            return data
        return cls(
            cluster_id=data["cluster_id"],
            snapshot_id=data["snapshot_id"],
            manifest_sha256=data["manifest_sha256"],
            mode=data["mode"],
            restart=bool(data["restart"]),
            dry_run=bool(data["dry_run"]),
            token=data["token"],
            target=ExecTarget.from_dict(data["target"]),
            files=int(data["files"]),
            bytes=int(data["bytes"]),
            leftovers=tuple(data.get("leftovers", ())),
            source=data.get("source", "snapshot"),
        )
