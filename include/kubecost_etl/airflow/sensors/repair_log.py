"""``RepairLogSensor``: waits until one repair step has logged every day (and hour) of its window.

It takes the ``watch`` the step's request task returned (pod, log position, expected periods,
deadline). Deferrable by default: one quick look, then the wait moves to the triggerer
(``RepairLogTrigger``) and holds no worker slot. With ``deferrable=False`` it pokes with the sync
client, keeping its log position between pokes (use mode ``poke``; in ``reschedule`` mode each
poke rereads the log from the request on).

A failure line, a cost-model restart or the step's timeout fails the task at once and without
retries: rereading the same log cannot change the answer, and resending belongs to the request task.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:  # imported where used: the repair DAG file imports this module when it is parsed
    from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
    from kubecost_etl.repair.log_watch import RepairLogWatch
    from kubecost_etl.repair.steps import RepairWatch, WatchEvent

_DEFER_GRACE = timedelta(minutes=5)  # the trigger reports its own timeout; this only backs it up


class RepairLogSensor(BaseSensorOperator):
    """
    :param watch: the request task's result (``kubecost_etl.airflow.stages.repair.request_step``), a
        ``RepairWatch`` in its XCom form.
    :param deferrable: wait in the triggerer (default) instead of a worker slot.
    """

    template_fields: Sequence[str] = ("watch",)
    ui_color = "#e8f4ea"

    def __init__(self, *, watch: dict | Any, deferrable: bool = True, **kwargs):
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.watch = watch
        self.deferrable = deferrable
        self._follower: RepairLogWatch | None = None  # poke mode keeps its log position between pokes
        self._cluster_hook: KubecostClusterHook | None = None

    @property
    def _watch(self) -> RepairWatch:
        """The rendered ``watch`` (an XCom value until the task runs), typed."""
        from kubecost_etl.repair.steps import RepairWatch

        return RepairWatch.from_dict(self.watch)

    def execute(self, context) -> Any:
        from kubecost_etl.airflow.triggers.repair_log import RepairLogTrigger

        watch = self._watch
        self.poke_interval = watch.poll_seconds
        if not self.deferrable:
            return super().execute(context)
        try:
            first_look = self.poke(context)
        except AirflowFailException:
            raise
        except Exception as exc:  # the trigger rides out API trouble; so does the first look
            self.log.warning("first look at the %s repair's log failed: %s", watch.title, exc)
        else:
            if first_look.is_done:
                return first_look.xcom_value
        self.log.info(
            "%s repair running; waiting in the triggerer (no worker slot) until %s",
            watch.title,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(watch.deadline)),
        )
        self.defer(
            trigger=RepairLogTrigger.for_watch(watch),  # from the request on: it rebuilds the progress
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, watch.deadline - time.time())) + _DEFER_GRACE,
        )

    def execute_complete(self, context, event: dict) -> dict:
        return self._finish(event)

    def poke(self, context) -> PokeReturnValue:
        follower = self._follower_for_poke()
        outcome = self._hook().poll_repair_log(follower)
        watch = self._watch
        outcome = outcome or follower.overdue(watch.deadline, watch.timeout_minutes)
        if outcome is None:
            self.log.info("%s: %s", watch.title, follower.tracker.missing() or "waiting")
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(follower.event(outcome)))

    def _hook(self) -> KubecostClusterHook:
        if self._cluster_hook is None:
            from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook

            self._cluster_hook = KubecostClusterHook.for_watch(self._watch.kube)
        return self._cluster_hook

    def _follower_for_poke(self) -> RepairLogWatch:
        if self._follower is None:
            from kubecost_etl.repair.log_watch import RepairLogWatch

            watch = self._watch
            self._follower = RepairLogWatch(watch.expected, watch.cursor.as_dict(), watch.pod)
        return self._follower

    def _finish(self, event: WatchEvent | dict) -> dict:
        from kubecost_etl.repair.steps import StepResult, WatchEvent

        event = WatchEvent.from_dict(event)
        for sweep in event.passes:
            self.log.info(
                "%s: %d/%d done%s",
                sweep["pass"],
                sweep["done"],
                sweep["expected"],
                f", missing {', '.join(sweep['missing'])}" if sweep["missing"] else "",
            )
        self.log.info(
            "log read: %d polls, %d bytes (at most %d per poll)",
            event.polls,
            event.bytes_read,
            event.max_bytes_per_poll,
        )
        if event.status != "done":
            raise AirflowFailException(event.message)
        self.log.info("%s", event.message)
        return StepResult.finished(self._watch, event).as_dict()
