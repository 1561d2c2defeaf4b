"""Alert bookkeeping: one alert per condition per cluster until it clears, then one recovery message.

The state is a small JSON mapping ``{condition key: {"since": ISO time, "summary": text}}`` per
cluster. The Airflow glue keeps it in one Airflow Variable per cluster
(``kubecost_etl_health__<cluster>``; ``__config`` for the configuration itself): the alert state
must survive a broken configuration or a dead bucket, which are themselves conditions to alert on,
so it cannot live in the object store. Summaries never carry credentials (they are built from
paths, counts and times only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kubecost_etl.health.checks import Condition


@dataclass
class AlertDecision:
    state: dict  # the new state to store
    fire: list[Condition] = field(default_factory=list)  # new conditions: alert now
    recovered: list[dict] = field(default_factory=list)  # {"key", "since", "summary"} of cleared ones
    ongoing: list[str] = field(default_factory=list)  # already alerted, still true: stay quiet

    @property
    def changed(self) -> bool:
        return bool(self.fire or self.recovered)


def reconcile(
    previous: dict | None, current: list[Condition], now: datetime, keep: set[str] | None = None
) -> AlertDecision:
    """Compare this run's conditions with what was already alerted.

    ``keep``: keys this run could not evaluate (e.g. the pod was unreachable, so gaps are unknown);
    their state is carried over unchanged rather than declared recovered.
    """
    previous = dict(previous or {})
    keep = keep or set()
    decision = AlertDecision(state={})
    seen = set()
    for condition in current:
        if condition.key in seen:
            continue
        seen.add(condition.key)
        if condition.key in previous:
            decision.state[condition.key] = previous[condition.key]
            decision.ongoing.append(condition.key)
        else:
            decision.state[condition.key] = {"since": now.isoformat(), "summary": condition.summary}
            decision.fire.append(condition)
    for key, entry in sorted(previous.items()):
        if key in seen:
            continue
        if key in keep:
            decision.state[key] = entry
        else:
            decision.recovered.append({"key": key, **entry})
    return decision


def alert_text(cluster_id: str, decision: AlertDecision) -> str | None:
    """One message for all of a run's changes for a cluster; None when nothing changed."""
    lines = []
    for condition in decision.fire:
        lines.append(
            f":rotating_light: Kubecost ETL health, cluster {cluster_id}: "
            f"{condition.key}: {condition.summary}"
        )
    for entry in decision.recovered:
        lines.append(
            f":white_check_mark: Kubecost ETL health, cluster {cluster_id}: {entry['key']} recovered "
            f"(since {entry['since']}: {entry['summary']})"
        )
    return "\n".join(lines) or None
