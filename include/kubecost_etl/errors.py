"""The package's one error tree.

Every error the domain raises derives from ``KubecostEtlError``. Two branches tell the Airflow
glue what to do with a failure:

- ``Refusal``: bad input or a state no retry can change (a config mistake, an unknown cluster, a
  bad window, a tampered manifest, a window outside what Prometheus holds, a lease held too long).
  The task fails at once, with one alert, and is not retried.
- everything else (``TransientError`` and the plain ``KubecostEtlError`` subclasses: exec streams
  cut, storage 5xx, a pod restarting): retried with backoff by Airflow.

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
