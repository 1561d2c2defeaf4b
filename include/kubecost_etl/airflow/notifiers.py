"""Failure alerts through Airflow notifiers, chosen by the project configuration at alert time.

The callback reads the configuration when a task fails, not when the DAG file is parsed, so DAG
parsing stays free of configuration I/O and a change of alert target needs no redeploy.
The failure's text is redacted (``kubecost_etl.redact``) before the notifier renders it: an alert
never carries a token, a key or a password, whatever the exception said.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MESSAGE = (
    "Kubecost ETL task failed: {{ ti.dag_id }}.{{ ti.task_id }}"
    "{% if ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %} run {{ run_id }}: {{ exception }}"
)


def notify_failure(context) -> None:
    # imported at alert time: kubecost_etl.config imports every pipeline's settings, and redact compiles
    # its patterns (every DAG file imports this module through dag_defaults)
    from kubecost_etl.config import load_alert_settings
    from kubecost_etl.redact import redact

    try:
        alerts = load_alert_settings()
    except Exception as exc:  # an alert path must never raise: report and stop
        log.error("cannot read alert settings: %s", redact(exc))
        return
    notifier = build_notifier(alerts)
    if notifier is None:
        log.info("alerts.notifier is 'none': no alert sent")
        return
    notifier(redacted_context(context))


def redacted_context(context) -> dict:
    """The context with its exception replaced by the exception's redacted text (what
    ``{{ exception }}`` shows).
    """
    from kubecost_etl.redact import redact

    exception = context.get("exception")
    if exception is None:
        return context
    safe = dict(context)
    safe["exception"] = redact(exception)
    return safe


def build_notifier(alerts):
    from kubecost_etl.config import Notifier

    if alerts.notifier == Notifier.SLACK:
        from airflow.providers.slack.notifications.slack import SlackNotifier

        return SlackNotifier(
            slack_conn_id=alerts.slack_conn_id,
            text=MESSAGE,
            **({"channel": alerts.slack_channel} if alerts.slack_channel else {}),
        )
    if alerts.notifier == Notifier.EMAIL:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=list(alerts.email_to),
            smtp_conn_id=alerts.smtp_conn_id,
            subject="Kubecost ETL: {{ ti.dag_id }}.{{ ti.task_id }} failed",
            html_content=MESSAGE,
        )
    return None
