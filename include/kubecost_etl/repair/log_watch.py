"""Following one repair step in the cost-model log between two reads (pure logic, no I/O).

A ``RepairLogWatch`` is handed the pod as it is now and the answer to each ``pods/log`` read
(``timestamps=true``); it says what to ask next and whether the step is done or failed. The same
watch serves the deferrable trigger (async client) and the sensor's poke mode (sync client): they
differ only in how they ask. One poll is ``check_pod``, then ``log_path``/``log_query`` read and
handed to ``read``, repeated at once while ``more_waiting``; then ``overdue``.

Reading cost does not grow with the log: a read starts at the second of the last line seen
(``sinceTime`` has second precision), lines up to the last one seen are dropped by their
nanosecond timestamps, and ``limitBytes`` caps a read (a full read is followed by another at once).
A restarted cost-model (the pod replaced, or its container restarted) loses the running repair
and its log: the watch reports that as a failure instead of waiting for lines that never come.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kubecost_etl.repair.log_matching import (
    Expectation,
    LogCursor,
    Outcome,
    StepTracker,
    parse_k8s_timestamp,
    read_message,
    split_lines,
)
from kubecost_etl.repair.profiles import get_profile
from kubecost_etl.repair.steps import WatchedPod, WatchEvent

DEFAULT_LIMIT_BYTES = 1 << 20
MAX_LIMIT_BYTES = 64 << 20
LOG_READ_TIMEOUT = 60  # seconds for one pods/log request


@dataclass(frozen=True)
class PodState:
    uid: str
    restarts: int


def pod_state(pod, container: str) -> PodState:
    """From a ``V1Pod`` of either client (``kubernetes`` or ``kubernetes_asyncio``)."""
    restarts = sum(
        status.restart_count or 0
        for status in (pod.status.container_statuses or [])
        if status.name == container
    )
    return PodState(pod.metadata.uid, restarts)


class RepairLogWatch:
    def __init__(
        self,
        expected: Expectation | dict,
        cursor: dict | None,
        pod: WatchedPod | dict,
        limit_bytes: int = DEFAULT_LIMIT_BYTES,
    ):
        expected = Expectation.from_dict(expected)
        self.tracker = StepTracker(get_profile(expected.profile), expected)
        self.cursor = LogCursor.from_dict(cursor)  # a copy of its own: it advances with every read
        self.pod = WatchedPod.from_dict(pod)  # as found when the repair was requested
        self.limit_bytes = limit_bytes
        self.polls = 0
        self.bytes_read: list[int] = []
        self.more_waiting = False  # the last read hit limitBytes: read again without pausing

    @property
    def title(self) -> str:
        return self.tracker.step.title

    def log_path(self) -> str:
        return f"/api/v1/namespaces/{self.pod.namespace}/pods/{self.pod.name}/log"

    def log_query(self) -> dict[str, str]:
        query = {"container": self.pod.container, "timestamps": "true", "limitBytes": str(self.limit_bytes)}
        if (since := self.cursor.since_time()) is not None:
            query["sinceTime"] = since
        return query

    def check_pod(self, state: PodState | None) -> Outcome | None:
        """A failure if the cost-model restarted since the request (``state`` None: the pod is gone)."""
        name = f"{self.pod.namespace}/{self.pod.name}"
        if state is None or state.uid != self.pod.uid:
            return Outcome(
                "failed",
                f"the cost-model pod {name} was replaced (a restart) during the {self.title} "
                "repair: the repair stopped with it. Find out why it restarted (often OOM during a "
                "repair), then run the repair again",
            )
        if state.restarts > self.pod.restarts:
            return Outcome(
                "failed",
                f"the {self.pod.container} container of {name} restarted during the "
                f"{self.title} repair ({self.pod.restarts} -> {state.restarts} restarts): the repair "
                "stopped with it. Find out why it restarted (often OOM), then run the repair again",
            )
        return None

    def read(self, status: int, body: bytes) -> Outcome | None:
        """One ``pods/log`` answer: 404 means the pod went away after ``check_pod``; other errors raise."""
        if status == 404:
            return self.check_pod(None)
        if status != 200:
            raise RuntimeError(f"pods/log answered HTTP {status}: {body[:300]!r}")
        return self.consume(body)

    def consume(self, raw: bytes) -> Outcome | None:
        self.polls += 1
        self.bytes_read.append(len(raw))
        lines = split_lines(raw)
        self.more_waiting = len(raw) >= self.limit_bytes
        self.cursor.begin_read()
        new_lines = 0
        for ns, text in lines:
            if not self.cursor.take(ns):
                continue
            new_lines += 1
            reason = self.tracker.feed(read_message(text))
            if reason:
                return Outcome("failed", f"{reason}: {text}", line=text)
            if self.tracker.done:
                return Outcome("done", f"{self.title} repair complete: {self._progress()}")
        if self.more_waiting and not new_lines:
            self._stuck_in_one_second(raw)
        return None

    def overdue(self, deadline: float, minutes: float) -> Outcome | None:
        """The timeout failure once ``deadline`` (unix time; ``minutes`` after the request) has passed."""
        if time.time() <= deadline:
            return None
        return Outcome(
            "failed",
            f"the {self.title} repair did not finish within {minutes:g} minutes "
            f"(repair.step_timeout_minutes): {self.tracker.missing()}",
        )

    def event(self, outcome: Outcome) -> WatchEvent:
        """How the watch ended (the trigger event / poke result; JSON via ``as_dict``)."""
        return WatchEvent(
            status=outcome.status,
            message=outcome.message,
            line=outcome.line,
            finished_at=time.time(),
            **self.stats(),
        )

    def stats(self) -> dict:
        return {
            "polls": self.polls,
            "bytes_read": sum(self.bytes_read),
            "max_bytes_per_poll": max(self.bytes_read, default=0),
            "passes": self.tracker.summary(),
            "days_done": self.tracker.days_done(),
            "days_expected": len(self.tracker.days),
            "last_line_ns": self.cursor.last_ns,
        }

    def _stuck_in_one_second(self, raw: bytes) -> None:
        """A full read brought nothing new: the lines of the cursor's second (or one line) fill a read.

        Read more next time; past a cap, skip to the next second, losing the rest of that second
        (only a log writing tens of MiB per second gets there).
        """
        if self.limit_bytes < MAX_LIMIT_BYTES:
            self.limit_bytes = min(self.limit_bytes * 2, MAX_LIMIT_BYTES)
            return
        stamp = raw.split(b" ", 1)[0].decode("ascii", "replace")
        next_second = (parse_k8s_timestamp(stamp) // 1_000_000_000 + 1) * 1_000_000_000
        self.cursor = LogCursor(next_second, 0)

    def _progress(self) -> str:
        return ", ".join(f"{s['pass']} {s['done']}/{s['expected']}" for s in self.tracker.summary())
