"""Test-wide setup: an isolated Airflow home (SQLite) and shared real-server fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration when first imported: set it before any test imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="kubecost-etl-airflow-")
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})
os.environ.pop("KUBECOST_ETL_CONFIG", None)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB, once per session (dag.test() needs one)."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME
