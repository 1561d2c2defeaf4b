"""Generated ETL trees for tests, and a way to compare trees byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kubecost_sim.etlgen import generate

SMALL_TREE = {"days": 6, "hourly_hours": 6, "file_bytes": 3000, "seed": 7}


def make_etl_dir(root: Path, **options) -> Path:
    """A generated ETL tree at ``root/db/etl`` (``root/db`` is the pod's ``/var/configs/db``)."""
    etl_dir = root / "db" / "etl"
    generate(etl_dir, **{**SMALL_TREE, **options})
    return etl_dir


def tree_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}
