"""The simulator's own shortcut: `sim`, one started simulator over the small `etl_dir` tree.

The shared fixtures (`simulator`, `etl_dir`, `big_etl_dir`, `kubectl`) live in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess


@pytest.fixture
def sim(simulator, etl_dir: Path) -> SimulatorProcess:
    return simulator(etl_dir)
