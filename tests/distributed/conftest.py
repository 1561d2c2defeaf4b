"""Tests marked ``distributed`` start a whole CeleryExecutor Airflow (PostgreSQL, Redis, API server,
scheduler, DAG processor, triggerer, two workers): minutes, not seconds. They run with
``make test-distributed`` (``pytest -m distributed``) and are skipped by a plain ``make test``."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "distributed: starts a whole CeleryExecutor Airflow; make test-distributed"
    )


def pytest_collection_modifyitems(config, items):
    if "distributed" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a whole CeleryExecutor deployment: run it with make test-distributed")
    for item in items:
        if item.get_closest_marker("distributed"):
            item.add_marker(skip)
