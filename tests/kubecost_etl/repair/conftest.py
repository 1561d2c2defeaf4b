"""Fixtures of this folder: a configured cluster on the simulator (see ``harness``)."""

from .harness import repair_cluster, repair_cluster_factory  # noqa: F401 (fixtures, found by pytest here)
