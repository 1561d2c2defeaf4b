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
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def add_federation_extras(etl_dir: Path, now: float, large_bytes: int = 11 * (1 << 20)) -> dict[str, str]:
    """What a federated push must carry beyond the four known stores: an extra pipeline dir, a ``1w``
    store, an 86-byte empty set file, a prefixed name, a large file (several upload parts), and a
    file outside ``bingen/`` (which has no federated key). Returns their relative paths by role."""
    import os

    from kubecost_sim import bingen

    day = int(now) - int(now) % 86400
    week = day - day % (7 * 86400)
    extras = {
        "extra_pipeline": f"bingen/networkinsights/1d/{day - 86400}-{day}",
        "weekly": f"bingen/allocations/1w/{week - 7 * 86400}-{week}",
        "empty_set": f"bingen/assets/1d/{day - 40 * 86400}-{day - 39 * 86400}",
        "prefixed": f"bingen/cloudcosts/1d/aws.{day - 86400}-{day}.bin",
        "large": f"bingen/customcosts/1d/{day - 2 * 86400}-{day - 86400}",
        "outside": "readme.txt",
    }
    rng = __import__("random").Random(5)
    contents = {
        "extra_pipeline": bingen.encode_set("allocations", day - 86400, day, 5000, rng),
        "weekly": bingen.encode_set("allocations", week - 7 * 86400, week, 7000, rng),
        "empty_set": bingen.encode_empty_set("assets", day - 40 * 86400, day - 39 * 86400),
        "prefixed": bingen.encode_set("assets", day - 86400, day, 3000, rng),
        "large": bingen.encode_set("allocations", day - 2 * 86400, day - 86400, large_bytes, rng),
        "outside": b"not ETL data\n",
    }
    assert len(contents["empty_set"]) == 86
    for role, relative in extras.items():
        path = etl_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[role])
        os.utime(path, (now - 3600, now - 3600))
    return extras
