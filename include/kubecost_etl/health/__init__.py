"""Is every cluster's cost history safe right now? Staleness, gaps and coverage, with no Airflow imports.

- ``settings``: the ``health:`` section of the configuration.
- ``checks``: staleness of the newest verified snapshot, files the pod lost, days missing in the
  pod's daily stores, short hourly coverage, and the coverage map (pod vs latest snapshot).
- ``alerts``: one alert per condition per cluster until it clears, and a recovery message then.
"""
