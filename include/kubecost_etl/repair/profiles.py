"""Repair profiles: which steps run, in which order, where each is requested, how its log reads.

A profile is a named chain (``v1``: the product documents' Asset, CloudUsage, Reconciliation,
Allocation; ``v2``: Kubecost 2.x's Asset, Allocation, CloudCost) plus a named, versioned set of
log patterns. Log formats differ between Kubecost releases, so a new release with other messages
gets a new pattern set (and a profile using it) instead of edits to the matching code.

Patterns match the *message* of a line, after the time and level (``log_matching.read_message``
strips plain, glog and JSON framing). Which lines exist, per the sources:

- Asset and Allocation (documented): ``ETL: Asset[1d]: ETLStore.Repair[id]: repairing <T>, <T>``
  starts a pass per resolution (``[1h]`` too when the window lies in the hourly store); each day
  (or hour) then logs ``run: aggregated [..)``, or in older releases
  ``Allocation[ETL[allocations][1d]]: Repair[id]: starting [..)``; a pass ends with
  ``ETLStore[id]: build: completed [..)``.
- CloudUsage (documented): ``ETL: CloudUsage[<key>]: Build[id]: QueryCloudUsage [..)`` per day and
  ``build: completed [..)``, once per cloud integration key. Its "repairing" line is not documented.
- Reconciliation and CloudCost: no public example exists; the patterns follow the same shape
  (``reconciled [..)``, ``ingested [..)``) and are marked unconfirmed.
- Failures (documented): ``Repair: error: cannot repair [..)``, ``MergeRange error: boundary
  error``, ``failed to create bucket storage``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

# Kubecost's renderings: a window "[2023-01-01T00:00:00+0000, 2023-01-02T00:00:00+0000)" and a Go
# time.Time "2023-01-01 00:00:00 +0000 UTC".
_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
WINDOW = rf"\[(?P<window_from>{_STAMP}), (?P<window_to>{_STAMP})\)"
_GO_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"
SPAN = rf"(?P<span_from>{_GO_TIME}) \w+, (?P<span_to>{_GO_TIME}) \w+"
_RES = r"(?P<res>1d|1h)"
_KEY = r"(?P<key>[^\]]+)"
_ID = r"\[\w+\]"


@dataclass(frozen=True)
class StepLog:
    """How one step's work shows in the log.

    ``start`` begins a pass (groups ``res`` or ``key``, ``span_from``/``span_to``); ``progress``
    marks one period done and ``build`` a whole pass (group ``window_*``). With ``start_required``,
    progress counts only after the pass's start line (periodic builds log the same progress lines).
    """

    start: tuple[re.Pattern, ...]
    progress: tuple[re.Pattern, ...]
    build: tuple[re.Pattern, ...]
    start_required: bool
    confirmed: bool  # False: no public example exists, the patterns are an educated guess


@dataclass(frozen=True)
class LogPatterns:
    name: str
    version: int
    failures: tuple[re.Pattern, ...]
    steps: dict[str, StepLog]

    @property
    def label(self) -> str:
        return f"{self.name}/v{self.version}"


@dataclass(frozen=True)
class Step:
    name: str  # as in the API path and in the simulator's fault switches
    title: str
    path: str  # below the cost-model API root (``/model`` on port 9090 and behind ingresses)
    keyed: bool  # runs once per cloud integration key instead of once per resolution
    accepts_provider: bool  # takes ``provider=<key>`` to limit the repair to one integration
    hourly: bool  # also rebuilds the 1h store when the window starts inside it


@dataclass(frozen=True)
class RepairProfile:
    name: str
    description: str
    steps: tuple[Step, ...]
    patterns: Callable[[], LogPatterns]  # compiled when a repair first reads the log, not at DAG parse

    @property
    def log_patterns(self) -> LogPatterns:
        return self.patterns()

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"profile {self.name} has no step {name!r}; its steps: {[s.name for s in self.steps]}")

    def step_log(self, name: str) -> StepLog:
        return self.log_patterns.steps[name]


def _store_log(component: str) -> StepLog:
    prefix = rf"ETL: {component}\[{_RES}\]: "
    return StepLog(
        start=(re.compile(rf"{prefix}ETLStore\.Repair{_ID}: repairing {SPAN}"),),
        progress=(
            re.compile(rf"{prefix}[\w.]+{_ID}: run: aggregated {WINDOW}"),
            re.compile(rf"ETL: {component}\[ETL\[\w+\]\[{_RES}\]\]: Repair{_ID}: starting {WINDOW}"),
        ),
        build=(re.compile(rf"{prefix}ETLStore{_ID}: build: completed {WINDOW}"),),
        start_required=True,
        confirmed=True,
    )


def _keyed_log(component: str, progress: str, confirmed: bool) -> StepLog:
    prefix = rf"ETL: {component}\[{_KEY}\]: "
    return StepLog(
        start=(re.compile(rf"{prefix}\w+\.Repair{_ID}: repairing {SPAN}"),),
        progress=(re.compile(rf"{prefix}\w+{_ID}: {progress} {WINDOW}"),),
        build=(re.compile(rf"{prefix}[\w.]+{_ID}: build: completed {WINDOW}"),),
        start_required=False,  # no documented start line: a seen one still resets the pass
        confirmed=confirmed,
    )


@cache
def kubecost_log_v1() -> LogPatterns:
    """Kubecost's log lines, version 1. Compiled once per process on first use: the repair DAG file
    imports this module for the profiles' steps, and parsing it need not compile a dozen patterns."""
    return LogPatterns(
        name="kubecost-log",
        version=1,
        failures=(
            re.compile(r"Repair: error: cannot repair"),
            re.compile(r"MergeRange error: boundary error"),
            re.compile(r"failed to create bucket storage"),
        ),
        steps={
            "asset": _store_log("Asset"),
            "allocation": _store_log("Allocation"),
            "cloudUsage": _keyed_log("CloudUsage", "QueryCloudUsage", confirmed=True),
            "reconciliation": _keyed_log("Reconciliation", "reconciled", confirmed=False),
            "cloudCost": _keyed_log("CloudCost", "ingested", confirmed=False),
        },
    )


ASSET = Step("asset", "Asset", "/etl/asset/repair", keyed=False, accepts_provider=False, hourly=True)
CLOUD_USAGE = Step(
    "cloudUsage", "CloudUsage", "/etl/cloudUsage/repair", keyed=True, accepts_provider=True, hourly=False
)
RECONCILIATION = Step(
    "reconciliation",
    "Reconciliation",
    "/etl/asset/reconciliation/repair",
    keyed=True,
    accepts_provider=True,
    hourly=False,
)
ALLOCATION = Step(
    "allocation", "Allocation", "/etl/allocation/repair", keyed=False, accepts_provider=False, hourly=True
)
CLOUD_COST = Step(
    "cloudCost", "CloudCost", "/cloudCost/repair", keyed=True, accepts_provider=False, hourly=False
)

PROFILES = {
    profile.name: profile
    for profile in (
        RepairProfile(
            "v1",
            "Asset, CloudUsage, Reconciliation, Allocation (the product documents, Kubecost 1.x)",
            (ASSET, CLOUD_USAGE, RECONCILIATION, ALLOCATION),
            kubecost_log_v1,
        ),
        RepairProfile(
            "v2",
            "Asset, Allocation, CloudCost (Kubecost 2.x)",
            (ASSET, ALLOCATION, CLOUD_COST),
            kubecost_log_v1,
        ),
    )
}
DEFAULT_PROFILE = "v1"


def get_profile(name: str) -> RepairProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown repair profile {name!r}; known: {sorted(PROFILES)}") from None


def request_task_id(step_name: str) -> str:
    return f"request_{step_name}"


def wait_task_id(step_name: str) -> str:
    return f"wait_{step_name}"
