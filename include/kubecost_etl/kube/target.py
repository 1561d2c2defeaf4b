"""Where commands that touch the ETL files run: the cost-model container, or a debug container.

Current Kubecost images have no ``tar``. Kubecost's own scripts then add an ephemeral debug
container (busybox) targeting ``cost-model`` and reach the files through ``/proc/1/root``.

Ephemeral containers can never be removed from a pod, so a running one of ours is reused. It
ends by itself when its ``sleep`` runs out, or when cost-model restarts in place; a target that
names one is checked before use (``ensure_running``) and a fresh, uniquely named one is added
when it no longer runs.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubecost_etl.kube.exec import CommandNotFound, ExecError, PodExec
from kubecost_etl.kube.pods import PodRef, find_cost_model_pod

if TYPE_CHECKING:
    from kubecost_etl.config import ClusterConfig

DEBUG_CONTAINER_PREFIX = "kubecost-etl-"
DEFAULT_DEBUG_CONTAINER_LIFETIME_S = 4 * 3600  # the container's sleep: it ends by itself after the work


@dataclass(frozen=True)
class ExecTarget:
    """A container to exec in, and the ETL root as that container sees it."""

    pod: PodRef
    container: str
    etl_root: str
    via_debug_container: bool = False

    def exec(self, core_api, command: list[str], stdin: bool = False, read_timeout: float = 300.0) -> PodExec:
        return PodExec(
            core_api,
            self.pod.namespace,
            self.pod.name,
            self.container,
            command,
            stdin=stdin,
            read_timeout=read_timeout,
        )

    def as_dict(self) -> dict:
        return {
            "pod": self.pod.as_dict(),
            "container": self.container,
            "etl_root": self.etl_root,
            "via_debug_container": self.via_debug_container,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ExecTarget:
        return cls(
            PodRef(**data["pod"]), data["container"], data["etl_root"], bool(data["via_debug_container"])
        )


def has_command(core_api, pod: PodRef, container: str, command: list[str]) -> bool:
    """Whether the container can run ``command``: any exit code but "not found" means it exists."""
    try:
        PodExec(core_api, pod.namespace, pod.name, container, command).run()
    except CommandNotFound:
        return False
    except ExecError as exc:
        if exc.exit_code is None:
            raise
    return True


def cluster_exec_target(core_api, cluster: ClusterConfig, pod: PodRef | None = None) -> ExecTarget:
    """``resolve_exec_target`` with a configured cluster's settings (ETL path, debug container mode,
    image and lifetime), for its cost-model pod: ``pod``, or the one its selector finds."""
    if pod is None:
        pod = find_cost_model_pod(core_api, cluster.namespace, cluster.selector, cluster.container)
    return resolve_exec_target(
        core_api,
        pod,
        cluster.etl_path,
        cluster.use_debug_container,
        cluster.debug_image,
        lifetime_seconds=cluster.debug_container_seconds,
    )


def resolve_exec_target(
    core_api,
    pod: PodRef,
    etl_path: str,
    mode: str = "auto",
    debug_image: str = "busybox:1.36",
    wait_seconds: float = 120.0,
    lifetime_seconds: int = DEFAULT_DEBUG_CONTAINER_LIFETIME_S,
) -> ExecTarget:
    """Where to run tar: in ``cost-model`` itself (mode never, or auto when it has tar), else a
    debug container.

    With mode never and no tar in the image, the first tar exec fails with CommandNotFound.
    """
    if mode == "never" or (mode == "auto" and has_command(core_api, pod, pod.container, ["tar", "--help"])):
        return ExecTarget(pod, pod.container, etl_path)
    # Ephemeral containers can never be removed from a pod: reuse ours while it still runs.
    name = running_debug_container(core_api, pod) or add_debug_container(
        core_api, pod, debug_image, wait_seconds, lifetime_seconds
    )
    return ExecTarget(pod, name, "/proc/1/root" + etl_path, via_debug_container=True)


def ensure_running(
    core_api,
    target: ExecTarget,
    debug_image: str = "busybox:1.36",
    wait_seconds: float = 120.0,
    lifetime_seconds: int = DEFAULT_DEBUG_CONTAINER_LIFETIME_S,
) -> ExecTarget:
    """``target`` if its container still runs; for a debug container that ended, another running one
    of ours or a fresh one (same pod, same ETL root)."""
    if not target.via_debug_container or _container_running(core_api, target.pod, target.container):
        return target
    name = running_debug_container(core_api, target.pod) or add_debug_container(
        core_api, target.pod, debug_image, wait_seconds, lifetime_seconds
    )
    return ExecTarget(target.pod, name, target.etl_root, via_debug_container=True)


def _container_running(core_api, pod: PodRef, name: str) -> bool:
    status = core_api.read_namespaced_pod(pod.name, pod.namespace).status
    for cs in status.ephemeral_container_statuses or []:
        if cs.name == name:
            return bool(cs.state and cs.state.running)
    return False


def running_debug_container(core_api, pod: PodRef) -> str | None:
    """A debug container this project added to the pod earlier that is still running (ended ones
    are skipped).
    """
    status = core_api.read_namespaced_pod(pod.name, pod.namespace).status
    for cs in status.ephemeral_container_statuses or []:
        if cs.name.startswith(DEBUG_CONTAINER_PREFIX) and cs.state and cs.state.running:
            return cs.name
    return None


def add_debug_container(
    core_api,
    pod: PodRef,
    image: str,
    wait_seconds: float,
    lifetime_seconds: int = DEFAULT_DEBUG_CONTAINER_LIFETIME_S,
) -> str:
    """Add an ephemeral container sharing cost-model's process namespace; return its name once running."""
    name = DEBUG_CONTAINER_PREFIX + secrets.token_hex(3)  # names must be unique per pod
    body = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": name,
                    "image": image,
                    "targetContainerName": pod.container,
                    "command": ["sleep", str(int(lifetime_seconds))],
                    "stdin": False,
                    "tty": False,
                }
            ]
        }
    }
    core_api.patch_namespaced_pod_ephemeralcontainers(pod.name, pod.namespace, body)
    deadline = time.monotonic() + wait_seconds
    while True:
        status = core_api.read_namespaced_pod(pod.name, pod.namespace).status
        for cs in status.ephemeral_container_statuses or []:
            if cs.name == name and cs.state and cs.state.running:
                return name
            if cs.name == name and cs.state and cs.state.terminated:
                raise ExecError(
                    f"debug container {name} in {pod.name} terminated: {cs.state.terminated.reason}"
                )
        if time.monotonic() > deadline:
            raise ExecError(f"debug container {name} in {pod.name} not running after {wait_seconds:.0f} s")
        time.sleep(1.0)  # polling the API for the container to start; not test timing
