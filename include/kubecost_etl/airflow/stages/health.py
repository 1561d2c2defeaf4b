"""The health pipeline's stages (``kubecost_etl_health``) and the one cluster inspection the UI plugin shares.

Alert state lives in Airflow Variables, one per cluster (``kubecost_etl_health__<cluster>``) plus
``kubecost_etl_health__config`` for the configuration itself: it must outlive a broken config file or a
dead bucket, which are conditions to alert on in their own right. A message that cannot be sent
leaves the state unchanged (the task fails and the next try or run sends it again).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.health.alerts import alert_text, reconcile
from kubecost_etl.health.checks import Condition, check_pod, coverage_map, iso, quarantine, staleness
from kubecost_etl.health.records import AlertOutcome, FillRequest, HealthReport

log = logging.getLogger(__name__)
STATE_VARIABLE = "kubecost_etl_health__{}"
CONFIG_STATE = "config"  # the Variable suffix for the configuration's own condition
GAP_KEYS = {"lost_files", "missing_days", "hourly_short"}
RESTORE_DAG = "kubecost_etl_restore"


def _now() -> datetime:
    return datetime.now(UTC)


# --- the inspection (shared with the plugin) -------------------------------------------------------


def snapshot_summary(repo, snapshot_id: str | None) -> dict | None:
    if snapshot_id is None:
        return None
    from kubecost_etl.snapshots.repository import snapshot_time

    manifest = repo.load_manifest(snapshot_id)
    made = snapshot_time(snapshot_id)
    return {
        "id": snapshot_id,
        "created_at": manifest.created_at,
        "age_hours": round((_now() - made).total_seconds() / 3600, 2) if made else None,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "stored_bytes": sum(f.stored_size for f in manifest.files),
        "paths": [f.path for f in manifest.files],
    }


def last_failed(repo) -> dict | None:
    """The newest committed snapshot whose verification failed (newer than the last good one)."""
    for snapshot_id in reversed(repo.snapshot_ids()):
        verification = repo.load_verification(snapshot_id)
        if verification and verification.get("ok"):
            return None
        if verification is not None:
            problems = [str(p)[:200] for p in (verification.get("problems") or [])[:3]]
            return {"id": snapshot_id, "problems": problems}
    return None


def pod_paths(cluster) -> list[str]:
    from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
    from kubecost_etl.kube.pod_files import list_files
    from kubecost_etl.kube.target import cluster_exec_target

    core = KubecostClusterHook.for_cluster(cluster).core_v1
    target = cluster_exec_target(core, cluster)
    files, _ = list_files(core, target)
    return [f.path for f in files]


def inspect_cluster(cluster, settings, now: datetime | None = None, with_map: bool = False) -> dict:
    """Everything the health checks and the status page know about one cluster.

    An unreachable bucket or pod becomes an ``unreachable`` condition (its message has no credentials:
    only the error's class and text, which the storage and kube layers keep free of them).
    """
    from kubecost_etl.airflow.hooks.object_store import open_repository
    from kubecost_etl.snapshots.repository import snapshot_time

    now = now or _now()
    conditions: list[Condition] = []
    unknown: set[str] = set()
    latest = failed = None
    try:
        repo = open_repository(cluster)
        latest = snapshot_summary(repo, repo.latest_good())
        failed = last_failed(repo)
        made = snapshot_time(latest["id"]) if latest else None
        stale = staleness(made, now, settings.max_backup_age)
        damaged = quarantine(repo.quarantined())
        conditions.extend(c for c in (stale, damaged) if c)
    except Exception as exc:  # noqa: BLE001 - any failure to read the store is reported, not raised
        conditions.append(Condition("unreachable", f"object store: {type(exc).__name__}: {exc}"[:500]))
        unknown |= GAP_KEYS | {"stale", "quarantine"}
    paths = None
    try:
        paths = pod_paths(cluster)
    except Exception as exc:  # noqa: BLE001
        conditions.append(Condition("unreachable", f"pod: {type(exc).__name__}: {exc}"[:500]))
        unknown |= GAP_KEYS
    if paths is not None:
        snapshot_paths = latest["paths"] if latest else None
        if "stale" in unknown:  # the store did not answer: only the pod's own gaps can be judged
            unknown.discard("missing_days")
            unknown.discard("hourly_short")
        conditions.extend(
            c for c in check_pod(snapshot_paths, paths, now, cluster.hourly_hours) if c.key not in unknown
        )
    report = HealthReport(
        cluster_id=cluster.id,
        checked_at=iso(now.timestamp()),
        conditions=tuple(_merge_unreachable(conditions)),
        unknown=tuple(sorted(unknown)),
        latest_verified={k: v for k, v in latest.items() if k != "paths"} if latest else None,
        last_failed=failed,
    ).as_dict()
    if with_map:
        report["coverage"] = (
            coverage_map(paths or [], latest["paths"] if latest else None, now, cluster.hourly_hours)
            if paths is not None
            else None
        )
    return report


def _merge_unreachable(conditions: list[Condition]) -> list[Condition]:
    """Store and pod both down: one ``unreachable`` condition naming both."""
    down = [c for c in conditions if c.key == "unreachable"]
    if len(down) < 2:
        return conditions
    merged = Condition("unreachable", "; ".join(c.summary for c in down))
    return [merged, *(c for c in conditions if c.key != "unreachable")]


# --- alerts -----------------------------------------------------------------------------------------


def _load_state(name: str) -> dict:
    from airflow.sdk import Variable

    return Variable.get(STATE_VARIABLE.format(name), default={}, deserialize_json=True) or {}


def _save_state(name: str, state: dict) -> None:
    from airflow.sdk import Variable

    Variable.set(STATE_VARIABLE.format(name), state, serialize_json=True)


def send(text: str, context) -> bool:
    """Send one message through the configured notifier; False when the notifier is 'none'."""
    from kubecost_etl.config import load_alert_settings

    alerts = load_alert_settings()
    if alerts.notifier == "slack":
        from airflow.providers.slack.notifications.slack import SlackNotifier

        notifier = SlackNotifier(
            slack_conn_id=alerts.slack_conn_id,
            text=text,
            **({"channel": alerts.slack_channel} if alerts.slack_channel else {}),
        )
    elif alerts.notifier == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifier = SmtpNotifier(
            to=list(alerts.email_to),
            smtp_conn_id=alerts.smtp_conn_id,
            subject=text.splitlines()[0][:150],
            html_content=text.replace("\n", "<br>\n"),
        )
    else:
        log.info("alerts.notifier is 'none': not sent: %s", text)
        return False
    notifier.notify(context)  # not __call__: the text is data, never rendered as a template
    return True


def settle(name: str, conditions: list[Condition], context, keep: set[str] | None = None) -> dict:
    """Alert new conditions, announce cleared ones, and remember what was said."""
    decision = reconcile(_load_state(name), conditions, _now(), keep)
    text = alert_text(name, decision)
    if text:
        log.info("%s", text)
        send(text, context)
    if decision.changed or keep:
        _save_state(name, decision.state)
    for key in decision.ongoing:
        log.info("%s: %s still true, already alerted: no new message", name, key)
    return AlertOutcome(
        fired=tuple(c.key for c in decision.fire),
        recovered=tuple(r["key"] for r in decision.recovered),
        ongoing=tuple(decision.ongoing),
    ).as_dict()


# --- the DAG's stages -------------------------------------------------------------------------------


def check_config(context) -> list[str]:
    """Load and check the configuration every run; a broken one alerts here (once) and fails the run."""
    from airflow.sdk.exceptions import AirflowFailException

    from kubecost_etl.airflow.hooks.object_store import check_store_ref
    from kubecost_etl.config import load_config

    try:
        config = load_config()
        for cluster in config.clusters:
            check_store_ref(cluster)
    except KubecostEtlError as exc:
        settle(CONFIG_STATE, [Condition("config", str(exc)[:500])], context)
        raise AirflowFailException(f"configuration invalid: {exc}") from exc
    settle(CONFIG_STATE, [], context)
    return config.cluster_ids()


def check_cluster(cluster_id: str) -> dict:
    from kubecost_etl.config import load_config

    config = load_config()
    result = inspect_cluster(config.cluster(cluster_id), config.health)
    report = HealthReport.from_dict(result)
    for condition in report.conditions:
        log.warning("%s: %s: %s", cluster_id, condition.key, condition.summary)
    if not report.conditions:
        log.info(
            "%s: healthy (latest verified snapshot %s)",
            cluster_id,
            (report.latest_verified or {}).get("id"),
        )
    return result


def alert(report: dict, context) -> dict:
    report = HealthReport.from_dict(report)
    return settle(report.cluster_id, list(report.conditions), context, set(report.unknown))


def fill_requests(reports: list[dict], run_id: str) -> list[dict]:
    """One fill-missing restore per cluster that lost files, when ``health.auto_fill`` is on."""
    from kubecost_etl.config import load_config

    settings = load_config().health
    requests = []
    for report in map(HealthReport.from_dict, reports):
        lost = report.condition("lost_files")
        if lost is None or not report.latest_verified:
            continue
        if not settings.auto_fill:
            log.info(
                "%s lost %d file(s); health.auto_fill is off: restore with mode fill-missing by hand",
                report.cluster_id,
                len(lost.details["paths"]),
            )
            continue
        snapshot = report.latest_verified["id"]
        log.info("%s: filling %s from snapshot %s", report.cluster_id, lost.details["paths"], snapshot)
        conf = {
            "cluster": report.cluster_id,
            "snapshot": snapshot,
            "mode": "fill-missing",
            "restart": settings.restart,
            "dry_run": False,
        }
        requests.append(FillRequest(f"health_fill__{report.cluster_id}__{run_id}"[:250], conf))
    return [request.as_dict() for request in requests]


def auto_fill(request: dict, context) -> None:
    """Trigger the restore run through the standard provider's TriggerDagRunOperator.

    It is run here, inside the task, rather than placed in the DAG file: importing its module costs
    about 3 s (it pulls ``airflow.api.common``), paid on every parse and every task start otherwise.
    An existing run with the same id (a retried task) is skipped, not triggered twice.
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    request = FillRequest.from_dict(request)
    TriggerDagRunOperator(
        task_id="auto_fill",
        trigger_dag_id=RESTORE_DAG,
        conf=request.conf,
        trigger_run_id=request.trigger_run_id,
        skip_when_already_exists=True,
    ).execute(context)
