"""Fault switches that tests flip on a running simulator.

One `Faults` object is shared by the Kubernetes API side and the cost-model side.
Tests set it through the admin endpoint (`POST /_sim/faults` with a JSON object of
the fields below; `DELETE /_sim/faults` resets) or the matching `serve` CLI flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class Faults:
    # Kubernetes side
    exec_cut_after_bytes: int | None = None  # close the exec WebSocket after N stdout bytes (once per arm)
    exec_cut_times: int = 1  # how many exec streams get cut before the fault disarms itself
    exec_cut_stdin_after_bytes: int | None = None  # drop the connection after N stdin bytes (once)
    # Lose an exec's status AFTER its command ran (and changed what it changes): the connection drops
    # where the Status frame would come. A regex searched in the space-joined argv picks the exec.
    exec_lose_status_pattern: str | None = None
    exec_lose_status_times: int = 1  # how many matching execs lose their status before the fault disarms
    exec_lose_status_following: int = 0  # after a match, the next N execs (any command) lose theirs too
    exec_lose_status_pending: int = 0  # (state) execs still to lose their status after a match
    # Make a matching exec fail without running: exit 1 with this stderr (e.g. a file that vanished
    # between find and its stat: "stat: cannot stat '...': No such file or directory").
    exec_fail_pattern: str | None = None
    exec_fail_times: int = 1
    exec_fail_stderr: str = "No such file or directory"
    # Cost-model side
    repair_http_500: list[str] = field(
        default_factory=list
    )  # repair step names answering 500, e.g. ["asset"]
    repair_http_500_times: int | None = None  # answer 500 this many times, then recover (None: always)
    repair_fail_step: str | None = None  # step that logs a documented failure line instead of completing
    restart_during_step: str | None = None  # step during which the pod is restarted (rollout) mid-repair
    repair_seconds_per_day: float = 0.0  # slow a repair down: pause between per-day progress lines
    repair_hold_steps: list[str] = field(default_factory=list)  # accepted, but not started until removed
    # Prometheus side: what data exists (see prometheus.py) and how its query API misbehaves
    prometheus_data_from: int | None = (
        None  # unix seconds: no samples before (a wiped or re-installed Prometheus)
    )
    prometheus_gap: list[str] = field(
        default_factory=list
    )  # "S,E" unix seconds: no samples in [S, E) (repeatable)
    prometheus_http_status: int | None = None  # /api/v1/query(_range) answers this status with an error body
    prometheus_body: str | None = (
        None  # /api/v1/query(_range) answers 200 with this body instead (malformed JSON)
    )
    prometheus_delay_seconds: float = (
        0.0  # /api/v1/query(_range) answers only after this pause (a slow server)
    )

    def update(self, changes: dict) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault switch(es): {sorted(unknown)}; known: {sorted(known)}")
        for gap in changes.get("prometheus_gap") or []:
            parse_gap(gap)
        for name, value in changes.items():
            setattr(self, name, value)

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default_factory() if callable(f.default_factory) else f.default)

    def as_dict(self) -> dict:
        return asdict(self)


def parse_gap(text: str) -> tuple[int, int]:
    """``"S,E"`` (unix seconds, S < E) as a pair; ValueError naming the problem otherwise."""
    try:
        start, end = (int(part) for part in str(text).split(","))
    except ValueError:
        raise ValueError(f"prometheus_gap {text!r}: expected 'S,E' in unix seconds") from None
    if end <= start:
        raise ValueError(f"prometheus_gap {text!r}: the end must be after the start")
    return start, end
