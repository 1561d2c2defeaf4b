"""Finding the cost-analyzer pod that really holds the ETL data.

In HA installs the frontend pods carry ``app=cost-analyzer`` too, so "first pod with the label"
(what Kubecost's own script does) can pick a pod without the data: we require a Ready pod with a
``cost-model`` container.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubecost_etl.errors import TransientError


class PodNotFound(TransientError, LookupError):
    """No suitable pod; the message lists what was found and why each was passed over."""


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    container: str
    started_at: str | None = None

    def as_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "container": self.container,
            "started_at": self.started_at,
        }


def find_cost_model_pod(core_api, namespace: str, selector: str, container: str = "cost-model") -> PodRef:
    from kubernetes.client.exceptions import ApiException

    try:
        pods = core_api.list_namespaced_pod(namespace, label_selector=selector).items
    except ApiException as exc:
        if exc.status == 404:
            raise PodNotFound(f"namespace {namespace!r} not found") from None
        raise
    passed_over = []
    candidates = []
    for pod in pods:
        name = pod.metadata.name
        containers = [c.name for c in pod.spec.containers]
        if container not in containers:
            passed_over.append(f"{name} (no {container!r} container: {containers})")
        elif pod.metadata.deletion_timestamp is not None:
            passed_over.append(f"{name} (terminating)")
        elif not _is_ready(pod):
            passed_over.append(f"{name} (not Ready, phase {pod.status.phase})")
        else:
            candidates.append(pod)
    if not candidates:
        found = "; ".join(passed_over) if passed_over else "no pods at all"
        raise PodNotFound(
            f"no Ready pod with a {container!r} container matches {selector!r} in namespace {namespace!r}"
            f" ({found})"
        )
    return _newest(candidates, namespace, container)


def find_running_pod(core_api, namespace: str, selector: str, container: str = "cost-model") -> PodRef:
    """The newest pod whose ``container`` runs, Ready or not: where a rollback can still exec.

    A restore that makes Kubecost fail its readiness probe must still be undone in that pod.
    """
    candidates = []
    for pod in core_api.list_namespaced_pod(namespace, label_selector=selector).items:
        if pod.metadata.deletion_timestamp is not None:
            continue
        statuses = {s.name: s for s in (pod.status.container_statuses or [])} if pod.status else {}
        status = statuses.get(container)
        if status is not None and status.state is not None and status.state.running is not None:
            candidates.append(pod)
    if not candidates:
        raise PodNotFound(
            f"no pod matching {selector!r} in namespace {namespace!r} has a running {container!r}"
        )
    return _newest(candidates, namespace, container)


def _newest(pods, namespace: str, container: str) -> PodRef:
    # Newest first: during a rollout the replacement pod is the one that will keep writing.
    pod = max(pods, key=lambda p: (p.status.start_time or p.metadata.creation_timestamp, p.metadata.name))
    started = pod.status.start_time.isoformat() if pod.status.start_time else None
    return PodRef(namespace, pod.metadata.name, pod.metadata.uid, container, started)


def pod_uid(core_api, namespace: str, name: str) -> str | None:
    """The pod's uid, or None if it is gone (a restart replaces the pod)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return core_api.read_namespaced_pod(name, namespace).metadata.uid
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _is_ready(pod) -> bool:
    if pod.status is None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
