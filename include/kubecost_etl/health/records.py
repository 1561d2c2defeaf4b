"""The health DAG's values that cross task boundaries (XCom: ``as_dict``): one cluster's report, what
an alert said, and a fill-missing restore to trigger."""

from __future__ import annotations

from dataclasses import dataclass

from kubecost_etl.health.checks import Condition


@dataclass(frozen=True)
class HealthReport:
    """What is wrong with one cluster now (the status page adds its coverage map to the dict form)."""

    cluster_id: str
    checked_at: str
    conditions: tuple[Condition, ...]
    unknown: tuple[str, ...]  # condition keys that could not be judged (the store or the pod did not answer)
    latest_verified: dict | None  # id, created_at, age_hours, files, bytes, stored_bytes
    last_failed: dict | None  # id, problems

    def condition(self, key: str) -> Condition | None:
        return next((c for c in self.conditions if c.key == key), None)

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "checked_at": self.checked_at,
            "conditions": [c.as_dict() for c in self.conditions],
            "unknown": list(self.unknown),
            "latest_verified": self.latest_verified,
            "last_failed": self.last_failed,
        }

    @classmethod
    def from_dict(cls, data: dict | HealthReport) -> HealthReport:
        if isinstance(data, HealthReport):
            return data
        conditions = tuple(
            Condition(c["key"], c["summary"], c.get("details") or {}) for c in data["conditions"]
        )
        return cls(
            data["cluster_id"],
            data["checked_at"],
            conditions,
            tuple(data["unknown"]),
            data["latest_verified"],
            data["last_failed"],
        )


@dataclass(frozen=True)
class AlertOutcome:
    """What one alert check said: conditions alerted now, cleared ones announced, ongoing ones kept quiet."""

    fired: tuple[str, ...]
    recovered: tuple[str, ...]
    ongoing: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"fired": list(self.fired), "recovered": list(self.recovered), "ongoing": list(self.ongoing)}

    @classmethod
    def from_dict(cls, data: dict | AlertOutcome) -> AlertOutcome:
        if isinstance(data, AlertOutcome):
            return data
        return cls(tuple(data["fired"]), tuple(data["recovered"]), tuple(data["ongoing"]))


@dataclass(frozen=True)
class FillRequest:
    """A fill-missing restore of a cluster that lost files (``health.auto_fill``)."""

    trigger_run_id: str
    conf: dict  # the restore DAG's params

    def as_dict(self) -> dict:
        return {"trigger_run_id": self.trigger_run_id, "conf": dict(self.conf)}

    @classmethod
    def from_dict(cls, data: dict | FillRequest) -> FillRequest:
        if isinstance(data, FillRequest):
            return data
        return cls(data["trigger_run_id"], dict(data["conf"]))
