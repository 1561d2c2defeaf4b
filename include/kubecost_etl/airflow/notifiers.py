"""Failure alerts through Airflow notifiers, chosen by the project configuration at alert time.

The callback reads the configuration when a task fails, not when the DAG file is parsed, so DAG
parsing stays free of configuration I/O and a change of alert target needs no redeploy.
"""

from __future__ import annotations

import logging

from kubecost_etl.config import load_alert_settings

log = logging.getLogger(__name__)

MESSAGE = ("Kubecost ETL task failed: {{ ti.dag_id }}.{{ ti.task_id }}"
           "{% if ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %} run {{ run_id }}: {{ exception }}")


def notify_failure(context) -> None:
    try:
        alerts = load_alert_settings()
    except Exception as exc:  # an alert path must never raise: report and stop
        log.error("cannot read alert settings: %s", exc)
        return
    notifier = build_notifier(alerts)
    if notifier is None:
        log.info("alerts.notifier is 'none': no alert sent")
        return
    notifier(context)


def build_notifier(alerts):
    if alerts.notifier == "slack":
        from airflow.providers.slack.notifications.slack import SlackNotifier

        return SlackNotifier(slack_conn_id=alerts.slack_conn_id, text=MESSAGE,
                             **({"channel": alerts.slack_channel} if alerts.slack_channel else {}))
    if alerts.notifier == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(to=list(alerts.email_to), smtp_conn_id=alerts.smtp_conn_id,
                            subject="Kubecost ETL: {{ ti.dag_id }}.{{ ti.task_id }} failed", html_content=MESSAGE)
    return None
