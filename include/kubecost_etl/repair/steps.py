"""What a repair step hands on: the watch its request task returns (for the log sensor and its
trigger), the watch's end (``WatchEvent``), the step's result and the run's summary (XCom: ``as_dict``)."""

from __future__ import annotations

from dataclasses import dataclass

from kubecost_etl.repair.log_matching import Expectation, LogCursor


@dataclass(frozen=True)
class KubeRef:
    """How to reach the cluster: an Airflow Kubernetes connection, or a kubeconfig (+ context)."""

    conn_id: str | None = None
    kubeconfig: str | None = None
    context: str | None = None

    def as_dict(self) -> dict:
        return {"conn_id": self.conn_id, "kubeconfig": self.kubeconfig, "context": self.context}

    @classmethod
    def from_dict(cls, data: dict | KubeRef) -> KubeRef:
        if isinstance(data, KubeRef):
            return data
        return cls(data.get("conn_id"), data.get("kubeconfig"), data.get("context"))


@dataclass(frozen=True)
class WatchedPod:
    """The cost-model pod as found when the repair was requested."""

    namespace: str
    name: str
    uid: str
    container: str
    restarts: int

    def as_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "container": self.container,
            "restarts": self.restarts,
        }

    @classmethod
    def from_dict(cls, data: dict | WatchedPod) -> WatchedPod:
        if isinstance(data, WatchedPod):
            return data
        return cls(data["namespace"], data["name"], data["uid"], data["container"], int(data["restarts"]))


@dataclass(frozen=True)
class RepairWatch:
    """What a step's sensor watches for: returned by the request task once Kubecost accepted the call."""

    step: str
    title: str
    request: str
    answer: dict  # ``RepairAnswer.as_dict()``
    requested_at: float
    deadline: float  # unix time after which the step counts as timed out
    timeout_minutes: float
    poll_seconds: float
    kube: KubeRef
    pod: WatchedPod
    cursor: LogCursor  # the log position just before the request
    expected: Expectation

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "title": self.title,
            "request": self.request,
            "answer": dict(self.answer),
            "requested_at": self.requested_at,
            "deadline": self.deadline,
            "timeout_minutes": self.timeout_minutes,
            "poll_seconds": self.poll_seconds,
            "kube": self.kube.as_dict(),
            "pod": self.pod.as_dict(),
            "cursor": self.cursor.as_dict(),
            "expected": self.expected.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict | RepairWatch) -> RepairWatch:
        if isinstance(data, RepairWatch):
            return data
        return cls(
            step=data["step"],
            title=data["title"],
            request=data["request"],
            answer=dict(data["answer"]),
            requested_at=data["requested_at"],
            deadline=data["deadline"],
            timeout_minutes=data["timeout_minutes"],
            poll_seconds=data["poll_seconds"],
            kube=KubeRef.from_dict(data["kube"]),
            pod=WatchedPod.from_dict(data["pod"]),
            cursor=LogCursor.from_dict(data["cursor"]),
            expected=Expectation.from_dict(data["expected"]),
        )


@dataclass(frozen=True)
class WatchEvent:
    """How a watch ended (the trigger's event, or a poke's result): ``done`` or ``failed``, and its reads."""

    status: str
    message: str
    line: str | None
    finished_at: float
    polls: int
    bytes_read: int
    max_bytes_per_poll: int
    passes: tuple[dict, ...]  # per pass: pass, expected, done, missing, announced
    days_done: int
    days_expected: int
    last_line_ns: int | None

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "message": self.message,
            "line": self.line,
            "finished_at": self.finished_at,
            "polls": self.polls,
            "bytes_read": self.bytes_read,
            "max_bytes_per_poll": self.max_bytes_per_poll,
            "passes": [dict(p) for p in self.passes],
            "days_done": self.days_done,
            "days_expected": self.days_expected,
            "last_line_ns": self.last_line_ns,
        }

    @classmethod
    def from_dict(cls, data: dict | WatchEvent) -> WatchEvent:
        if isinstance(data, WatchEvent):
            return data
        return cls(
            data["status"],
            data["message"],
            data.get("line"),
            data["finished_at"],
            data["polls"],
            data["bytes_read"],
            data["max_bytes_per_poll"],
            tuple(data["passes"]),
            data["days_done"],
            data["days_expected"],
            data.get("last_line_ns"),
        )


@dataclass(frozen=True)
class StepResult:
    """A finished step, as its sensor returns it."""

    step: str
    title: str
    request: str
    answer: dict  # ``RepairAnswer.as_dict()``
    days_done: int
    days_expected: int
    passes: tuple[dict, ...]
    seconds: float
    requested_at: float = 0.0
    finished_at: float = 0.0
    polls: int = 0
    bytes_read: int = 0
    max_bytes_per_poll: int = 0

    @classmethod
    def finished(cls, watch: RepairWatch, event: WatchEvent) -> StepResult:
        return cls(
            step=watch.step,
            title=watch.title,
            request=watch.request,
            answer=dict(watch.answer),
            days_done=event.days_done,
            days_expected=event.days_expected,
            passes=event.passes,
            seconds=round(event.finished_at - watch.requested_at, 3),
            requested_at=watch.requested_at,
            finished_at=event.finished_at,
            polls=event.polls,
            bytes_read=event.bytes_read,
            max_bytes_per_poll=event.max_bytes_per_poll,
        )

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "title": self.title,
            "request": self.request,
            "answer": dict(self.answer),
            "requested_at": self.requested_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "days_done": self.days_done,
            "days_expected": self.days_expected,
            "passes": [dict(p) for p in self.passes],
            "polls": self.polls,
            "bytes_read": self.bytes_read,
            "max_bytes_per_poll": self.max_bytes_per_poll,
        }

    @classmethod
    def from_dict(cls, data: dict | StepResult) -> StepResult:
        if isinstance(data, StepResult):
            return data
        return cls(
            step=data["step"],
            title=data["title"],
            request=data["request"],
            answer=dict(data["answer"]),
            days_done=data["days_done"],
            days_expected=data["days_expected"],
            passes=tuple(data["passes"]),
            seconds=data["seconds"],
            requested_at=data.get("requested_at", 0.0),
            finished_at=data.get("finished_at", 0.0),
            polls=data.get("polls", 0),
            bytes_read=data.get("bytes_read", 0),
            max_bytes_per_poll=data.get("max_bytes_per_poll", 0),
        )


@dataclass(frozen=True)
class RepairSummary:
    """The run's leaf: one line per step (and per day let through by ``allow_partial_days``)."""

    cluster_id: str
    window: dict  # ``RepairWindow.as_dict()``
    profile: str
    dry_run: bool
    lines: tuple[str, ...]
    partial_days: tuple[str, ...]  # the dates let through by allow_partial_days

    def as_dict(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "window": dict(self.window),
            "profile": self.profile,
            "dry_run": self.dry_run,
            "lines": list(self.lines),
            "partial_days": list(self.partial_days),
        }

    @classmethod
    def from_dict(cls, data: dict | RepairSummary) -> RepairSummary:
        if isinstance(data, RepairSummary):
            return data
        return cls(
            data["cluster_id"],
            dict(data["window"]),
            data["profile"],
            bool(data["dry_run"]),
            tuple(data["lines"]),
            tuple(data["partial_days"]),
        )
