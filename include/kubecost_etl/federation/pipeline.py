"""A federated push in one call: plan, push, verify, retention (the stages an orchestrator runs as tasks)."""

from __future__ import annotations

from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.storage.base import ObjectStore

from .owner import Owner
from .plan import plan_push
from .push import PushResult, push_files
from .retention import RetentionResult, apply_retention
from .settings import FederatedSettings
from .verify import VerifyReport, verify_push


def federate(
    core_api,
    target: ExecTarget,
    store: ObjectStore,
    settings: FederatedSettings,
    cluster_id: str,
    me: Owner,
    now: float | None = None,
    full_verify: bool = False,
) -> tuple[PushResult, VerifyReport, RetentionResult]:
    plan = plan_push(core_api, target, store, settings, cluster_id, me, now)
    pushed = push_files(core_api, target, store, settings, plan, me)
    report = verify_push(core_api, target, store, settings, plan, pushed, full=full_verify)
    return pushed, report, apply_retention(store, settings, cluster_id, me, now)
