"""``AIRFLOW__CORE__HOSTNAME_CALLABLE`` for the distributed test: two Celery workers on one machine
record different hostnames on the task instances they run (``KUBECOST_ETL_TEST_HOSTNAME``)."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("KUBECOST_ETL_TEST_HOSTNAME") or socket.getfqdn()
