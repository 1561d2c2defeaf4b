"""The backup pipeline's values that cross task boundaries besides the plan and the streamed entries
(``Plan``, ``Streamed``): where to read from, a verified snapshot (XCom: ``as_dict``). The run's report
is a ``kubecost_etl.run_report.RunReport``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the light tasks (report) read these records without the Kubernetes client
    from kubecost_etl.kube.target import ExecTarget


@dataclass(frozen=True)
class FederatedTarget:
    """``backup.source: federated``: the files are read from the cluster's federated bucket copy,
    not a pod.
    """

    layout: str
    federated_id: str  # the cluster id the federated layout is keyed by

    source = "federated"

    def as_dict(self) -> dict:
        return {"source": self.source, "layout": self.layout, "federated_id": self.federated_id}

    @classmethod
    def from_dict(cls, data: dict | FederatedTarget) -> FederatedTarget:
        if isinstance(data, FederatedTarget):
            return data
        return cls(data["layout"], data["federated_id"])


def backup_target(data: dict | ExecTarget | FederatedTarget) -> ExecTarget | FederatedTarget:
    """``find_pod``'s result: the exec target in the pod, or the federated copy."""
    from kubecost_etl.kube.target import ExecTarget

    if isinstance(data, ExecTarget | FederatedTarget):
        return data
    if data.get("source") == FederatedTarget.source:
        return FederatedTarget.from_dict(data)
    return ExecTarget.from_dict(data)


@dataclass(frozen=True)
class VerifiedSnapshot:
    """A cluster's committed snapshot once it passed verification (``verify``'s result)."""

    cluster_id: str
    snapshot_id: str
    repository: str  # the repository's description (no secrets)
    objects: int
    rehashed: int
    coverage: dict = field(default_factory=dict)  # per store: files, covered hours, windows, gaps, warnings

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "snapshot_id": self.snapshot_id,
            "repository": self.repository,
            "objects": self.objects,
            "rehashed": self.rehashed,
            "coverage": dict(self.coverage),
        }

    @classmethod
    def from_dict(cls, data: dict | VerifiedSnapshot) -> VerifiedSnapshot:
        if isinstance(data, VerifiedSnapshot):
            return data
        return cls(
            data["cluster_id"],
            data["snapshot_id"],
            data["repository"],
            data["objects"],
            data["rehashed"],
            dict(data.get("coverage") or {}),
        )

    def describe(self) -> str:
        return (
            f"{self.cluster_id}: snapshot {self.snapshot_id} verified ({self.objects} objects, "
            f"{self.rehashed} re-hashed) in {self.repository}"
        )
