"""The repair run's plan: what preflight decided, handed to every later stage (XCom: ``as_dict``)."""

from __future__ import annotations

from dataclasses import dataclass

from kubecost_etl.etl.windows import RepairWindow
from kubecost_etl.repair.prometheus_coverage import DayCoverage
from kubecost_etl.repair.retention import Retention


@dataclass(frozen=True)
class PlannedStep:
    """One repair call as planned (the request is described, never sent, by preflight)."""

    step: str
    title: str
    request: str

    def as_dict(self) -> dict:
        return {"step": self.step, "title": self.title, "request": self.request}

    @classmethod
    def from_dict(cls, data: dict) -> PlannedStep:
        return cls(data["step"], data["title"], data["request"])


@dataclass(frozen=True)
class CoverageCheck:
    """How preflight checked what Prometheus holds (the per-day numbers stay in its log)."""

    metrics: tuple[str, ...]
    min_coverage: float
    queries: int
    source: str

    def as_dict(self) -> dict:
        return {
            "metrics": list(self.metrics),
            "min_coverage": self.min_coverage,
            "queries": self.queries,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> CoverageCheck:
        return cls(tuple(data["metrics"]), data["min_coverage"], data["queries"], data["source"])


@dataclass(frozen=True)
class RepairPlan:
    cluster_id: str
    profile: str
    window: RepairWindow
    provider: str | None
    backup_first: bool
    dry_run: bool
    retention: Retention
    steps: tuple[PlannedStep, ...]
    planned_at: int
    coverage: CoverageCheck
    partial_days: tuple[DayCoverage, ...] = ()  # let through by allow_partial_days

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "profile": self.profile,
            "window": self.window.as_dict(),
            "provider": self.provider,
            "backup_first": self.backup_first,
            "dry_run": self.dry_run,
            "retention": self.retention.as_dict(),
            "steps": [step.as_dict() for step in self.steps],
            "planned_at": self.planned_at,
            "coverage": self.coverage.as_dict(),
            "partial_days": [day.as_dict() for day in self.partial_days],
        }

    @classmethod
    def from_dict(cls, data: dict | RepairPlan) -> RepairPlan:
        if isinstance(data, RepairPlan):
            return data
        return cls(
            cluster_id=data["cluster_id"],
            profile=data["profile"],
            window=RepairWindow.from_dict(data["window"]),
            provider=data["provider"],
            backup_first=bool(data["backup_first"]),
            dry_run=bool(data["dry_run"]),
            retention=Retention.from_dict(data["retention"]),
            steps=tuple(PlannedStep.from_dict(step) for step in data["steps"]),
            planned_at=data["planned_at"],
            coverage=CoverageCheck.from_dict(data["coverage"]),
            partial_days=tuple(DayCoverage.from_dict(day) for day in data.get("partial_days") or ()),
        )
