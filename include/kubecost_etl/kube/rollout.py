"""Rolling the cost-analyzer workload so Kubecost reloads its ETL files, as ``kubectl rollout restart``.

The workload is found from the pod itself (pod -> ReplicaSet -> Deployment, or pod ->
StatefulSet), so no deployment name has to be configured. A restart patches the pod template's
``kubectl.kubernetes.io/restartedAt`` annotation; then we wait until a Ready replacement pod runs
and the old pod is gone (only one Kubecost may write to the volume). An ephemeral debug container
goes away with the old pod: callers resolve their exec target again afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubecost_etl.errors import KubecostEtlError
from kubecost_etl.kube.pods import PodNotFound, PodRef, find_cost_model_pod, pod_uid

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_STRATEGIC_MERGE = "application/strategic-merge-patch+json"  # what kubectl sends for this patch


class RolloutError(KubecostEtlError, RuntimeError):
    pass


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment or StatefulSet
    name: str
    namespace: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace}


def owning_workload(core_api, apps_api, pod: PodRef) -> Workload:
    owner = _controller(core_api.read_namespaced_pod(pod.name, pod.namespace).metadata)
    if owner is not None and owner.kind == "ReplicaSet":
        replica_set = apps_api.read_namespaced_replica_set(owner.name, pod.namespace)
        deployment = _controller(replica_set.metadata)
        if deployment is not None and deployment.kind == "Deployment":
            return Workload("Deployment", deployment.name, pod.namespace)
    if owner is not None and owner.kind == "StatefulSet":
        return Workload("StatefulSet", owner.name, pod.namespace)
    found = f"{owner.kind} {owner.name}" if owner is not None else "no controller"
    raise RolloutError(
        f"pod {pod.namespace}/{pod.name} is not run by a Deployment or StatefulSet ({found}): "
        "restart Kubecost yourself so it reloads the restored files"
    )


def _controller(metadata):
    return next((ref for ref in metadata.owner_references or [] if ref.controller), None)


def restart_workload(apps_api, workload: Workload, now: datetime | None = None) -> str:
    """Patch the pod template's restart annotation; returns the value written."""
    # Microseconds keep two restarts within one second distinct (a same-second value changes nothing).
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    patch = (
        apps_api.patch_namespaced_deployment
        if workload.kind == "Deployment"
        else apps_api.patch_namespaced_stateful_set
    )
    patch(workload.name, workload.namespace, body, _content_type=_STRATEGIC_MERGE)
    return stamp


def wait_for_replacement(
    core_api,
    namespace: str,
    selector: str,
    container: str,
    old: PodRef,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PodRef:
    """The Ready pod that replaced ``old``, once ``old`` itself is gone (or, for a StatefulSet, renewed)."""
    deadline = clock() + timeout_s
    while True:
        try:
            pod = find_cost_model_pod(core_api, namespace, selector, container)
            if pod.uid == old.uid:
                waiting_for = f"the newest Ready pod is still {pod.name}"
            elif pod_uid(core_api, namespace, old.name) == old.uid:
                waiting_for = f"old pod {old.name} is still there"
            else:
                return pod
        except PodNotFound as exc:
            waiting_for = str(exc)
        if clock() > deadline:
            raise RolloutError(
                f"no Ready replacement for pod {old.name} after {timeout_s:.0f} s: {waiting_for}"
            )
        sleep(poll_s)  # polling the API for the rollout to progress; not test timing
