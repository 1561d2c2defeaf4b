"""The leaf report of a run over several clusters (backup, federate, prune): who succeeded, one line each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunReport:
    succeeded: tuple[str, ...]  # cluster ids, sorted
    lines: tuple[str, ...]  # one per cluster, in the order asked

    def as_dict(self) -> dict:
        return {"succeeded": list(self.succeeded), "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: dict | RunReport) -> RunReport:
        if isinstance(data, RunReport):
            return data
        return cls(tuple(data["succeeded"]), tuple(data["lines"]))
