"""What every pipeline DAG shares: retries with backoff and failure alerts through the notifier.

The retries are for transient errors only: a ``Refusal`` fails its task on the first try (the stages'
``@refusals_fail_at_once`` raises ``AirflowFailException``), and ``on_failure_callback`` runs once, on
the final failure, so a refusal sends exactly one alert.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from kubecost_etl.airflow.notifiers import notify_failure

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "on_failure_callback": notify_failure,
}
