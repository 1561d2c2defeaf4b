"""The product's wheel carries the product package only: the cluster simulator is a test tool."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_kubecost_etl_without_the_simulator(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("kubecost_etl_airflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("kubecost_etl/airflow/stages/") for n in names)
    assert not [n for n in names if n.startswith("kubecost_sim")]
    entry_points = next((n for n in names if n.endswith("entry_points.txt")), None)
    assert entry_points is None or b"kubecost-sim" not in zipfile.ZipFile(wheel).read(entry_points)
