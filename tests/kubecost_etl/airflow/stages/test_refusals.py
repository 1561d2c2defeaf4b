"""The one mechanism: a Refusal fails the task at once; other errors are retried; no message
carries a secret.
"""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from kubecost_etl.airflow.stages import backup, repair, restore
from kubecost_etl.airflow.stages._refusals import RedactedError, refusals_fail_at_once
from kubecost_etl.errors import ConfigError, ParamsError, TransientError
from kubecost_etl.repair.kubecost_api import RepairRequestFailed
from kubecost_etl.repair.retention import RetentionUnknown
from kubecost_etl.snapshots.repository import SnapshotNotFound
from kubecost_etl.storage.base import ObjectNotFound

SECRET = "Zq8TkXr2Wv9LmN4pS7dE"


def stage_raising(exc):
    @refusals_fail_at_once
    def some_stage():
        raise exc

    return some_stage


@pytest.mark.parametrize(
    "refusal",
    [
        ConfigError(f"cluster 'a': backup.object_store: line 3: secret_key: {SECRET}"),
        ParamsError("clusters: ['a'] named more than once"),
        SnapshotNotFound("snapshot 'x' of cluster 'a' does not exist"),
        RetentionUnknown("Prometheus did not say"),
        RepairRequestFailed("Asset repair: Kubecost refused it with HTTP 400", retryable=False),
    ],
)
def test_a_refusal_fails_at_once_with_a_redacted_message(refusal):
    with pytest.raises(AirflowFailException) as failed:
        stage_raising(refusal)()
    assert str(failed.value).startswith("some_stage refused (not retried): ")
    assert (
        SECRET not in str(failed.value)
        and failed.value.__cause__ is None
        and failed.value.__suppress_context__
    )


@pytest.mark.parametrize(
    "error",
    [
        TransientError("exec stream cut"),
        RuntimeError("pod went away"),
        ObjectNotFound("objects/sha256/aa/bb.zst"),
        RepairRequestFailed("Asset repair: Kubecost answered HTTP 503", retryable=True),
    ],
)
def test_other_errors_pass_unchanged_so_airflow_retries_them(error):
    with pytest.raises(type(error)) as raised:
        stage_raising(error)()
    assert raised.value is error and not isinstance(raised.value, AirflowFailException)


def test_an_error_holding_a_secret_is_re_raised_redacted_and_still_retried():
    with pytest.raises(RedactedError) as raised:
        stage_raising(ValueError(f"Invalid header value b'Bearer {SECRET}\\n'"))()
    assert SECRET not in str(raised.value) and str(raised.value).startswith("ValueError: ")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_airflow_control_flow_passes_through():
    with pytest.raises(AirflowSkipException):
        stage_raising(AirflowSkipException("dry run"))()
    with pytest.raises(AirflowFailException, match="^preflight: password: <redacted>$"):
        stage_raising(AirflowFailException(f"preflight: password: {SECRET}"))()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            backup,
            [
                "select_clusters",
                "find_pod",
                "plan",
                "find_and_plan",
                "stream",
                "commit",
                "verify",
                "run_backup",
                "report",
            ],
        ),
        (repair, ["preflight", "backup", "choose_steps", "request_step", "summary"]),
        (
            restore,
            [
                "preflight",
                "verify_snapshot",
                "plan",
                "safety_backup",
                "stage",
                "check_staged",
                "swap",
                "restart",
                "post_check",
                "finish",
            ],
        ),
    ],
)
def test_every_stage_function_has_the_mechanism(module, names):
    for name in names:
        assert getattr(getattr(module, name), "refusals_fail_at_once", False), f"{module.__name__}.{name}"
