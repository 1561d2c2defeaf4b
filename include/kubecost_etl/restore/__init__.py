"""Putting a backed-up snapshot back into the pod without ever risking the live ETL data.

Stages (each a plain function with JSON-friendly inputs and outputs, run as separate tasks):
``snapshot`` (choose, pin and check the manifest, verify every object), ``plan`` (what would
change), ``stage`` (stream the files into a staging dir next to the ETL dir and check them),
``swap`` (renames; for ``fill-missing`` a no-clobber move of each absent file), ``post_check``,
and ``recovery`` (finish after success, or put the previous data back after a failure).
"""

from .snapshot import RestoreRefused

__all__ = ["RestoreRefused"]
