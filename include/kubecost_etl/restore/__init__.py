"""Putting a backed-up snapshot back into the pod without ever risking the live ETL data.

Modules (plain functions with JSON-friendly inputs and outputs, run as separate tasks):
``snapshot`` (choose, pin and check the manifest, verify every object), ``plan`` (what would
change), ``stage`` (stream the files into a staging dir next to the ETL dir and check them),
``swap`` (renames; for ``fill-missing`` a no-clobber move of each absent file; and the end of a
run: ``finish`` after success, ``roll_back`` to put the previous data back after a failure),
``post_check``, and ``pod_dirs`` (the directories next to the ETL dir that a run uses).
"""
