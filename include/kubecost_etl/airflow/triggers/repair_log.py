"""The trigger behind ``RepairLogSensor``: follows the cost-model log in the triggerer until a step is done.

Each poll checks that the cost-model pod is still the one that accepted the repair, then reads
only the log lines written since the last poll (see ``kubecost_etl.repair.log_watch``). One
event ends the wait: ``done``, or ``failed`` (a failure line, a restart, the step's timeout, or
the Kubernetes API failing several polls in a row). If the triggerer restarts, the trigger is
rebuilt from ``serialize()`` and reads again from the moment of the request: nothing is resent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubecost_etl.airflow.hooks.kubecost_cluster import AsyncKubecostClusterHook
from kubecost_etl.repair.log_matching import Outcome
from kubecost_etl.repair.log_watch import DEFAULT_LIMIT_BYTES, RepairLogWatch
from kubecost_etl.repair.steps import RepairWatch

API_ERRORS_IN_A_ROW = 5  # transient API trouble is waited out; this many failed polls in a row is not


class RepairLogTrigger(BaseTrigger):
    """
    :param kube: how to reach the cluster: ``conn_id`` (an Airflow Kubernetes connection) or
        ``kubeconfig`` (+ ``context``); neither means the provider's default connection.
    :param pod: the cost-model pod as found at the request (namespace, name, uid, container, restarts).
    :param expected: what the step must log (``kubecost_etl.repair.log_matching.expectation``).
    :param cursor: the log position just before the request.
    :param deadline: unix time after which the step counts as timed out.
    :param poll_seconds: pause between polls.
    :param timeout_minutes: the step's timeout (named in the failure message).
    """

    def __init__(
        self,
        kube: dict,
        pod: dict,
        expected: dict,
        cursor: dict | None,
        deadline: float,
        poll_seconds: float,
        timeout_minutes: float,
        limit_bytes: int = DEFAULT_LIMIT_BYTES,
    ):
        super().__init__()
        self.kube = kube
        self.pod = pod
        self.expected = expected
        self.cursor = cursor
        self.deadline = deadline
        self.poll_seconds = poll_seconds
        self.timeout_minutes = timeout_minutes
        self.limit_bytes = limit_bytes

    @classmethod
    def for_watch(cls, watch: RepairWatch | dict, **changes) -> RepairLogTrigger:
        """The trigger for a request task's result (``kubecost_etl.airflow.stages.repair.request_step``)."""
        watch = RepairWatch.from_dict(watch)
        fields = {
            "kube": watch.kube.as_dict(),
            "pod": watch.pod.as_dict(),
            "expected": watch.expected.as_dict(),
            "cursor": watch.cursor.as_dict(),
            "deadline": watch.deadline,
            "poll_seconds": watch.poll_seconds,
            "timeout_minutes": watch.timeout_minutes,
        }
        return cls(**{**fields, **changes})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kube": self.kube,
                "pod": self.pod,
                "expected": self.expected,
                "cursor": self.cursor,
                "deadline": self.deadline,
                "poll_seconds": self.poll_seconds,
                "timeout_minutes": self.timeout_minutes,
                "limit_bytes": self.limit_bytes,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = RepairLogWatch(self.expected, self.cursor, self.pod, self.limit_bytes)
        hook = AsyncKubecostClusterHook.for_watch(self.kube)
        errors_in_a_row = 0
        while True:
            try:
                outcome = await hook.poll_repair_log(watch)
                errors_in_a_row = 0
            except Exception as exc:  # the API may hiccup; only persistent failure ends the wait
                errors_in_a_row += 1
                error = f"{type(exc).__name__}: {exc}"
                self.log.warning(
                    "reading the %s repair's progress failed (%d in a row): %s",
                    watch.title,
                    errors_in_a_row,
                    error,
                )
                outcome = None
                if errors_in_a_row >= API_ERRORS_IN_A_ROW:
                    outcome = Outcome(
                        "failed",
                        f"the Kubernetes API failed {errors_in_a_row} polls in a row while "
                        f"following the {watch.title} repair; last error: {error}",
                    )
            outcome = outcome or watch.overdue(self.deadline, self.timeout_minutes)
            if outcome is not None:
                yield TriggerEvent(watch.event(outcome).as_dict())
                return
            if not watch.more_waiting:
                await asyncio.sleep(self.poll_seconds)
