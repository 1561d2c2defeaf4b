"""The one place where the error tree meets Airflow's retries.

Every stage function is wrapped in ``@refusals_fail_at_once``:

- a ``Refusal`` (config mistake, unknown or duplicate cluster, bad params, bad window, tampered
  manifest, ...) becomes ``AirflowFailException``: the task fails on this try, is not retried, and
  the failure callback sends exactly one alert;
- anything else propagates unchanged and Airflow retries it with the DAG's backoff;
- whatever passes, its message is redacted first (``kubecost_etl.redact``): an exception whose text
  holds something that looks like a secret is replaced by a ``RedactedError`` with the redacted text
  (chained ``from None``, so the original text is not printed with the traceback either). A
  refusal stays a refusal, anything else stays retried.

Importing this module also hands every secret the domain registers (header values and passwords
read from connections) to Airflow's own secrets masker, so task logs hide them as well.
"""

from __future__ import annotations

import functools
import logging

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from kubecost_etl.errors import KubecostEtlError, Refusal
from kubecost_etl.redact import add_secret_hook, redact

log = logging.getLogger(__name__)


class RedactedError(KubecostEtlError, RuntimeError):
    """An error whose message held a secret, re-raised with the secret removed (retried as before)."""


def _mask_with_airflow(value: str) -> None:
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # noqa: BLE001 (masking is a second line; redact() is the first)
        log.debug("Airflow's secrets masker is not available here")


add_secret_hook(_mask_with_airflow)


def refusal_message(exc: BaseException, stage: str) -> str:
    return f"{stage} refused (not retried): {redact(exc)}"


def refusals_fail_at_once(function):
    """Fail a ``Refusal`` at once (no retry, one alert); let every other error retry; redact all messages."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Refusal as exc:
            raise AirflowFailException(refusal_message(exc, function.__name__)) from None
        except AirflowFailException as exc:
            text = str(exc)
            if redact(text) != text:
                raise AirflowFailException(redact(text)) from None
            raise
        except AirflowException:
            raise  # skips, deferrals, reschedules: Airflow's own control flow
        except Exception as exc:
            text = str(exc)
            if redact(text) != text:
                raise RedactedError(f"{type(exc).__name__}: {redact(text)}") from None
            raise

    wrapper.refusals_fail_at_once = True
    return wrapper
