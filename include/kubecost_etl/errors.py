"""The package's one error tree.

Every error the domain raises derives from ``KubecostEtlError``. Two branches tell the Airflow
glue what to do with a failure:

- ``Refusal``: bad input or a state no retry can change (a config mistake, an unknown cluster,
  bad trigger params, a bad window, a named snapshot that does not exist, a tampered manifest, a
  window outside what Prometheus holds, a lease wait exhausted, a snapshot verified damaged). The
  task fails at once, with one alert, and is not retried (``kubecost_etl.airflow.stages._refusals``).
- everything else (``TransientError`` and the plain ``KubecostEtlError`` subclasses: exec streams
  cut, storage 5xx, a pod restarting): retried with backoff by Airflow.

Messages never hold secrets (the Airflow glue still passes them through ``kubecost_etl.redact``).
Kept apart so any module can raise them without import cycles; no Airflow imports here.
"""


class KubecostEtlError(Exception):
    """Root of every error this package raises on purpose."""


class Refusal(KubecostEtlError):
    """No retry can fix this: the input or the situation must change first."""


class TransientError(KubecostEtlError):
    """Worth another try: the network, the store or the pod may answer next time."""


class ConfigError(Refusal, ValueError):
    """The configuration is wrong; the message names the cluster and the field."""


class ParamsError(Refusal, ValueError):
    """The params a run was triggered with are wrong (unknown or duplicate cluster ids, a bad mode...)."""
