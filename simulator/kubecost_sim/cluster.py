"""The objects of the simulated ``kubecost`` namespace, as the Kubernetes API shows them.

Two deployments: ``kubecost-cost-analyzer`` (one Ready pod with the ``cost-model`` container,
which holds the ETL data, and the ``cost-analyzer-frontend`` nginx container) and, as in HA
installs, ``kubecost-cost-analyzer-frontend`` whose pod also carries ``app=cost-analyzer`` but has
only a frontend container. Pods are listed in creation order with the frontend pod FIRST, so
"first pod labelled app=cost-analyzer" picks the wrong one, as it can on a real HA install.

A rollout restart (``kubectl rollout restart`` PATCH, ``/_sim/restart`` or the cost-model side's
``restart_pod()``) replaces the cost-model pod: new ReplicaSet hash, name and uid, empty logs,
fresh scratch folders; the ETL data (``/var/configs/db``, a PVC) is kept. Every change bumps a
resourceVersion and is kept in a short event history for watches.

Everything here runs on the server's event loop; ``append_log`` and ``rollout_restart`` may
also be called from other threads and are handed over to the loop.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import secrets
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from .execshell import Toolbox, busybox_toolbox, gnu_toolbox
from .podfs import ContainerFS

NAMESPACE = "kubecost"
RELEASE = "kubecost"
COST_MODEL_DEPLOYMENT = "kubecost-cost-analyzer"
FRONTEND_DEPLOYMENT = "kubecost-cost-analyzer-frontend"
COST_MODEL_CONTAINER = "cost-model"
FRONTEND_CONTAINER = "cost-analyzer-frontend"
ETL_MOUNT = "/var/configs/db"  # the pod path whose host folder is ETL_DIR.parent
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system", NAMESPACE)
NODE_NAME = "kubecost-sim-node"
COST_MODEL_IMAGE = "gcr.io/kubecost1/cost-model:prod-2.4.3"
FRONTEND_IMAGE = "gcr.io/kubecost1/frontend:prod-2.4.3"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the letters Kubernetes uses in generated names
_HISTORY = 2000  # watch events kept for resourceVersion-based resumes


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SAFE_ALPHABET) for _ in range(length))


def _template_hash(template: dict) -> str:
    """A stable pod-template-hash: FNV-1a of the template, spelled in the safe alphabet."""
    digest = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True).encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(digest))


def _fake_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def object_metadata(obj: Pod | ReplicaSet | Deployment, **more) -> dict:
    """The metadata every namespaced object of the simulated cluster carries, then ``more``."""
    return {
        "name": obj.name,
        "namespace": NAMESPACE,
        "uid": obj.uid,
        "resourceVersion": str(obj.resource_version),
        "creationTimestamp": rfc3339(obj.created),
        **more,
    }


@dataclass
class Container:
    spec: dict  # the Kubernetes container spec (name, image, ports, ...)
    toolbox: Toolbox
    fs: ContainerFS
    started_at: float
    log: list[tuple[int, str]] = field(default_factory=list)  # (receive time in ns, line)
    ephemeral: bool = False
    ended_at: float | None = None  # an ephemeral container that stopped (it is never removed from the pod)
    ended_reason: str = "Completed"
    restart_count: int = 0

    @property
    def name(self) -> str:
        return self.spec["name"]

    def ended(self, now: float | None = None) -> float | None:
        """When the container stopped, or None while it runs. A ``sleep N`` command ends after N seconds."""
        if self.ended_at is not None:
            return self.ended_at
        command = list(self.spec.get("command") or []) + list(self.spec.get("args") or [])
        if self.ephemeral and len(command) == 2 and command[0].rsplit("/", 1)[-1] == "sleep":
            try:
                lifetime = float(command[1])
            except ValueError:
                return None
            if (now or time.time()) >= self.started_at + lifetime:
                return self.started_at + lifetime
        return None

    def end(self, reason: str, now: float | None = None) -> None:
        if self.ended() is None:
            self.ended_at, self.ended_reason = now or time.time(), reason

    def status(self) -> dict:
        ended = self.ended()
        state = (
            {"running": {"startedAt": rfc3339(self.started_at)}}
            if ended is None
            else {
                "terminated": {
                    "exitCode": 0 if self.ended_reason == "Completed" else 137,
                    "reason": self.ended_reason,
                    "startedAt": rfc3339(self.started_at),
                    "finishedAt": rfc3339(ended),
                }
            }
        )
        status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": (
                f"{self.spec.get('image', '').split(':')[0]}@sha256:"
                f"{_fake_digest(self.spec.get('image', ''))}"
            ),
            "containerID": f"containerd://{_fake_digest(f'{self.name}{self.started_at}')}",
            "ready": not self.ephemeral and ended is None,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {},
        }
        if not self.ephemeral:
            status["started"] = True
        return status


@dataclass
class Pod:
    name: str
    uid: str
    labels: dict
    owner: ReplicaSet
    spec: dict
    created: float
    containers: dict[str, Container]  # regular, then ephemeral ones, by name
    scratch: Path
    pod_ip: str
    resource_version: int = 0

    @property
    def cost_model(self) -> Container | None:
        return self.containers.get(COST_MODEL_CONTAINER)

    def to_json(self) -> dict:
        regular = [c for c in self.containers.values() if not c.ephemeral]
        ephemeral = [c for c in self.containers.values() if c.ephemeral]
        conditions = [
            {
                "type": kind,
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.created),
            }
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        spec = copy.deepcopy(self.spec)
        if ephemeral:
            spec["ephemeralContainers"] = [copy.deepcopy(c.spec) for c in ephemeral]
        status = {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": "10.0.0.10",
            "hostIPs": [{"ip": "10.0.0.10"}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": rfc3339(self.created),
            "containerStatuses": [c.status() for c in regular],
            "qosClass": "Burstable",
        }
        if ephemeral:
            status["ephemeralContainerStatuses"] = [c.status() for c in ephemeral]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": object_metadata(
                self,
                generateName=self.name[:-5],
                labels=dict(self.labels),
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": self.owner.name,
                        "uid": self.owner.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            ),
            "spec": spec,
            "status": status,
        }


@dataclass
class ReplicaSet:
    name: str
    uid: str
    deployment: Deployment
    template: dict
    template_hash: str
    revision: int
    created: float
    replicas: int = 1
    resource_version: int = 0

    def to_json(self) -> dict:
        labels = {**self.template["metadata"]["labels"], "pod-template-hash": self.template_hash}
        template = copy.deepcopy(self.template)
        template["metadata"]["labels"] = dict(labels)
        return {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": object_metadata(
                self,
                generation=1,
                labels=labels,
                annotations={
                    "deployment.kubernetes.io/desired-replicas": str(self.deployment.replicas),
                    "deployment.kubernetes.io/max-replicas": str(self.deployment.replicas + 1),
                    "deployment.kubernetes.io/revision": str(self.revision),
                },
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": self.deployment.name,
                        "uid": self.deployment.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            ),
            "spec": {
                "replicas": self.replicas,
                "selector": {
                    "matchLabels": {**self.deployment.selector, "pod-template-hash": self.template_hash}
                },
                "template": template,
            },
            "status": {
                "replicas": self.replicas,
                "fullyLabeledReplicas": self.replicas,
                "readyReplicas": self.replicas,
                "availableReplicas": self.replicas,
                "observedGeneration": 1,
            },
        }


@dataclass
class Deployment:
    name: str
    uid: str
    labels: dict
    selector: dict
    template: dict
    created: float
    replicas: int = 1
    generation: int = 1
    revision: int = 0
    resource_version: int = 0
    current: ReplicaSet | None = None

    def to_json(self) -> dict:
        ready = self.replicas if self.current else 0
        condition_time = rfc3339(self.current.created if self.current else self.created)
        return {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": object_metadata(
                self,
                generation=self.generation,
                labels=dict(self.labels),
                annotations={
                    "deployment.kubernetes.io/revision": str(self.revision),
                    "meta.helm.sh/release-name": RELEASE,
                    "meta.helm.sh/release-namespace": NAMESPACE,
                },
            ),
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": dict(self.selector)},
                "template": copy.deepcopy(self.template),
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": self.generation,
                "replicas": ready,
                "updatedReplicas": ready,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": condition_time,
                        "lastTransitionTime": rfc3339(self.created),
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": (
                            f'ReplicaSet "{self.current.name if self.current else self.name}" '
                            "has successfully progressed."
                        ),
                        "lastUpdateTime": condition_time,
                        "lastTransitionTime": rfc3339(self.created),
                    },
                ],
            },
        }


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    kind: str  # "Pod", "Deployment", "ReplicaSet"
    type: str  # "ADDED", "MODIFIED", "DELETED"
    object: dict


def _container_spec(name: str, image: str, ports: list[tuple[str, int]], mounts: list[dict]) -> dict:
    spec = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "100m", "memory": "55Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if ports:
        spec["ports"] = [
            {"name": port_name, "containerPort": number, "protocol": "TCP"} for port_name, number in ports
        ]
    if mounts:
        spec["volumeMounts"] = mounts
    return spec


def _pod_template(labels: dict, containers: list[dict], volumes: list[dict]) -> dict:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "containers": containers,
            "volumes": volumes,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "kubecost-cost-analyzer",
            "serviceAccount": "kubecost-cost-analyzer",
            "securityContext": {"fsGroup": 1001, "runAsUser": 1001, "runAsGroup": 1001},
            "schedulerName": "default-scheduler",
        },
    }


class Cluster:
    def __init__(self, etl_dir: Path, work_dir: Path, cost_model_has_tar: bool = True):
        if etl_dir.name != "etl":
            raise ValueError(
                f"--etl-dir must be a folder named 'etl' (got {etl_dir}): the pod sees its "
                f"parent as {ETL_MOUNT}, so staging folders next to it land next to it"
            )
        etl_dir.mkdir(parents=True, exist_ok=True)
        self.etl_dir = etl_dir
        self.work_dir = work_dir
        self.cost_model_has_tar = cost_model_has_tar
        self.restarts = 0
        self._versions = itertools.count(1)
        self.resource_version = next(self._versions)
        self.deployments: dict[str, Deployment] = {}
        self.replicasets: dict[str, ReplicaSet] = {}
        self.pods: dict[str, Pod] = {}  # creation order: the HA frontend pod comes first
        self.events: deque[WatchEvent] = deque(maxlen=_HISTORY)
        self._restart_callbacks: list[Callable[[], None]] = []
        self._pod_deleted_callbacks: list[Callable[[Pod], None]] = []
        self._containers_ended_callbacks: list[Callable[[Pod, list[str]], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._changed = asyncio.Event()
        self._pod_ips = itertools.count(11)
        self.created = time.time()
        self.services = self._services()
        self._create_deployment(
            FRONTEND_DEPLOYMENT,
            labels={
                "app": "cost-analyzer",
                "app.kubernetes.io/name": "cost-analyzer-frontend",
                "app.kubernetes.io/instance": RELEASE,
            },
            containers=[_container_spec(FRONTEND_CONTAINER, FRONTEND_IMAGE, [("tcp-frontend", 9090)], [])],
            volumes=[],
        )
        self._create_deployment(
            COST_MODEL_DEPLOYMENT,
            labels={
                "app": "cost-analyzer",
                "app.kubernetes.io/name": "cost-analyzer",
                "app.kubernetes.io/instance": RELEASE,
            },
            containers=[
                _container_spec(
                    COST_MODEL_CONTAINER,
                    COST_MODEL_IMAGE,
                    [("tcp-model", 9003), ("tcp-frontend", 9090)],
                    [{"name": "persistent-configs", "mountPath": "/var/configs"}],
                ),
                _container_spec(FRONTEND_CONTAINER, FRONTEND_IMAGE, [], []),
            ],
            volumes=[
                {
                    "name": "persistent-configs",
                    "persistentVolumeClaim": {"claimName": "kubecost-cost-analyzer"},
                }
            ],
        )

    # ------------------------------------------------------------------ loop plumbing

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called once the server's loop runs: from then on, other threads hand work to it."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def _on_loop(self, function: Callable, *args):
        """Run ``function`` on the event loop; from another thread, wait for its result."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            return function(*args)
        future: Future = Future()

        def call():
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed back to the calling thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result()

    def _bump(self) -> int:
        self.resource_version = next(self._versions)
        return self.resource_version

    def wake_waiters(self) -> None:
        """Wake everyone waiting for a change (log followers, watches)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def _record(self, kind: str, event_type: str, obj) -> None:
        obj.resource_version = self._bump()
        self.events.append(WatchEvent(obj.resource_version, kind, event_type, obj.to_json()))
        self.wake_waiters()

    def on_restart(self, callback: Callable[[], None]) -> None:
        """Register a callback run after the cost-model pod was replaced (or scaled away)."""
        self._restart_callbacks.append(callback)

    def on_pod_deleted(self, callback: Callable[[Pod], None]) -> None:
        """Register a callback run when any pod goes (its processes die with it)."""
        self._pod_deleted_callbacks.append(callback)

    def on_containers_ended(self, callback: Callable[[Pod, list[str]], None]) -> None:
        """Register a callback run when containers of a pod stop (their execs die)."""
        self._containers_ended_callbacks.append(callback)

    # ------------------------------------------------------------------------ queries

    def _pods_of(self, deployment: Deployment) -> list[Pod]:
        return [pod for pod in self.pods.values() if pod.owner.deployment is deployment]

    def cost_model_pod(self) -> Pod | None:
        return next(iter(self._pods_of(self.deployments[COST_MODEL_DEPLOYMENT])), None)

    def state(self) -> dict:
        pod = self.cost_model_pod()
        return {
            "namespace": NAMESPACE,
            "cost_model_pod": pod.name if pod else None,
            "cost_model_pod_uid": pod.uid if pod else None,
            "restarts": self.restarts,
            "etl_dir": str(self.etl_dir),
            "cost_model_has_tar": self.cost_model_has_tar,
            "resource_version": self.resource_version,
            "pods": [
                {
                    "name": p.name,
                    "uid": p.uid,
                    "deployment": p.owner.deployment.name,
                    "containers": [c.name for c in p.containers.values() if not c.ephemeral],
                    "ephemeral_containers": [c.name for c in p.containers.values() if c.ephemeral],
                    "log_lines": {c.name: len(c.log) for c in p.containers.values()},
                }
                for p in self.pods.values()
            ],
            "deployments": {
                d.name: {
                    "replicas": d.replicas,
                    "generation": d.generation,
                    "revision": d.revision,
                    "replicaset": d.current.name if d.current else None,
                }
                for d in self.deployments.values()
            },
        }

    # ------------------------------------------------------------------------ changes

    def append_log(self, container: str, line: str) -> None:
        """Append one stdout line to the current cost-model pod's container (dropped if none)."""
        self._on_loop(self._append_log, container, line)

    def _append_log(self, container: str, line: str) -> None:
        pod = self.cost_model_pod()
        target = pod.containers.get(container) if pod else None
        if target is None:
            return
        target.log.append((time.time_ns(), line.rstrip("\n")))
        self.wake_waiters()

    def rollout_restart(self, deployment: str = COST_MODEL_DEPLOYMENT) -> str | None:
        """What ``kubectl rollout restart`` does; returns the new pod's name."""
        return self._on_loop(self._rollout_restart, deployment)

    def _rollout_restart(self, name: str) -> str | None:
        deployment = self.deployments[name]
        template = copy.deepcopy(deployment.template)
        template["metadata"].setdefault("annotations", {})[RESTARTED_AT] = rfc3339(time.time())
        self.update_deployment(deployment, template=template)
        pod = next(iter(self._pods_of(deployment)), None)
        return pod.name if pod else None

    def update_deployment(
        self, deployment: Deployment, template: dict | None = None, replicas: int | None = None
    ) -> None:
        """Apply a new pod template and/or replica count (0 or 1), replacing pods as needed."""
        template_changed = template is not None and template != deployment.template
        replicas_changed = replicas is not None and replicas != deployment.replicas
        if not (template_changed or replicas_changed):
            return
        if template_changed:
            deployment.template = copy.deepcopy(template)
            deployment.generation += 1
        if replicas_changed:
            deployment.replicas = replicas
            deployment.generation += 1
        old_pods = self._pods_of(deployment)
        if template_changed:
            self._new_replicaset(deployment)
        if replicas_changed or template_changed:
            if deployment.current is not None:
                deployment.current.replicas = deployment.replicas
                self._record("ReplicaSet", "MODIFIED", deployment.current)
            for pod in old_pods:
                self._delete_pod(pod)
            if deployment.replicas:
                self._create_pod(deployment.current)
        self._record("Deployment", "MODIFIED", deployment)
        if old_pods:
            self._pods_replaced(deployment)

    def delete_pod(self, name: str) -> dict:
        """``kubectl delete pod``: the pod goes, its ReplicaSet creates a replacement."""
        pod = self.pods[name]
        gone = pod.to_json()
        gone["metadata"]["deletionTimestamp"] = rfc3339(time.time())
        gone["metadata"]["deletionGracePeriodSeconds"] = 30
        self._delete_pod(pod)
        self._create_pod(pod.owner)
        self._pods_replaced(pod.owner.deployment)
        return gone

    def _pods_replaced(self, deployment: Deployment) -> None:
        """A deployment's pods went (restart, rollout, scale, delete): for cost-model, a restart."""
        if deployment.name == COST_MODEL_DEPLOYMENT:
            self.restarts += 1
            for callback in self._restart_callbacks:
                callback()

    def add_ephemeral_container(self, pod: Pod, spec: dict) -> None:
        target_name = spec.get("targetContainerName")
        target = pod.containers.get(target_name) if target_name else None
        fs = ContainerFS(pod.scratch / spec["name"], process_root=target.fs if target else None)
        spec = {
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "resources": {},
            **spec,
        }
        # Debug images are busybox-like whatever their name: tar, find (no -printf), sha256sum...
        pod.containers[spec["name"]] = Container(spec, busybox_toolbox(), fs, time.time(), ephemeral=True)
        self._record("Pod", "MODIFIED", pod)

    def end_ephemeral_containers(self, restart_cost_model: bool = False) -> list[str]:
        """Stop the cost-model pod's ephemeral containers (as when their sleep ends, reason Completed), or
        restart cost-model in place, which also ends the debug containers that target its processes."""
        return self._on_loop(self._end_ephemeral_containers, restart_cost_model)

    def _end_ephemeral_containers(self, restart_cost_model: bool) -> list[str]:
        pod = self.cost_model_pod()
        if pod is None:
            return []
        now = time.time()
        ended = []
        for container in pod.containers.values():
            if container.ephemeral and container.ended() is None:
                container.end("Error" if restart_cost_model else "Completed", now)
                ended.append(container.name)
        if restart_cost_model and pod.cost_model is not None:
            pod.cost_model.restart_count += 1
            pod.cost_model.started_at = now
        for callback in self._containers_ended_callbacks:
            callback(pod, ended)
        self._record("Pod", "MODIFIED", pod)
        return ended

    # ------------------------------------------------------------------------ building

    def _create_deployment(
        self, name: str, labels: dict, containers: list[dict], volumes: list[dict]
    ) -> None:
        deployment = Deployment(
            name=name,
            uid=str(uuid.uuid4()),
            labels={**labels, "helm.sh/chart": "cost-analyzer-2.4.3"},
            selector=dict(labels),
            template=_pod_template(labels, containers, volumes),
            created=self.created,
        )
        self.deployments[name] = deployment
        self._new_replicaset(deployment)
        self._record("Deployment", "ADDED", deployment)
        self._create_pod(deployment.current)

    def _new_replicaset(self, deployment: Deployment) -> None:
        template_hash = _template_hash(deployment.template)
        name = f"{deployment.name}-{template_hash}"
        for old in self.replicasets.values():
            if old.deployment is deployment and old.replicas and old.name != name:
                old.replicas = 0
                self._record("ReplicaSet", "MODIFIED", old)
        deployment.revision += 1
        existing = self.replicasets.get(name)
        if existing is not None:  # back to an earlier template (a rollback): reuse its ReplicaSet
            existing.revision = deployment.revision
            existing.replicas = deployment.replicas
            deployment.current = existing
            self._record("ReplicaSet", "MODIFIED", existing)
            return
        replicaset = ReplicaSet(
            name=name,
            uid=str(uuid.uuid4()),
            deployment=deployment,
            template=copy.deepcopy(deployment.template),
            template_hash=template_hash,
            revision=deployment.revision,
            created=time.time(),
            replicas=deployment.replicas,
        )
        self.replicasets[name] = replicaset
        deployment.current = replicaset
        self._record("ReplicaSet", "ADDED", replicaset)

    def _create_pod(self, replicaset: ReplicaSet) -> Pod:
        name = f"{replicaset.name}-{_random_suffix()}"
        while name in self.pods:
            name = f"{replicaset.name}-{_random_suffix()}"
        scratch = self.work_dir / "pods" / name
        spec = copy.deepcopy(replicaset.template["spec"])
        spec["nodeName"] = NODE_NAME
        now = time.time()
        containers = {}
        for container_spec in spec["containers"]:
            container_name = container_spec["name"]
            mounts = {}
            if any(m.get("mountPath") == "/var/configs" for m in container_spec.get("volumeMounts", [])):
                mounts[ETL_MOUNT] = self.etl_dir.parent
            toolbox = gnu_toolbox(with_tar=self.cost_model_has_tar or container_name != COST_MODEL_CONTAINER)
            containers[container_name] = Container(
                container_spec, toolbox, ContainerFS(scratch / container_name, mounts), now
            )
        labels = {**replicaset.template["metadata"]["labels"], "pod-template-hash": replicaset.template_hash}
        pod = Pod(
            name=name,
            uid=str(uuid.uuid4()),
            labels=labels,
            owner=replicaset,
            spec=spec,
            created=now,
            containers=containers,
            scratch=scratch,
            pod_ip=f"10.244.0.{next(self._pod_ips) % 250 + 2}",
        )
        self.pods[name] = pod
        self._record("Pod", "ADDED", pod)
        return pod

    def _delete_pod(self, pod: Pod) -> None:
        del self.pods[pod.name]
        self._record("Pod", "DELETED", pod)
        for callback in self._pod_deleted_callbacks:
            callback(pod)
        shutil.rmtree(pod.scratch, ignore_errors=True)  # the container filesystems die with the pod

    def _services(self) -> dict[str, dict]:
        def service(name: str, ports: list[dict], selector: dict, cluster_ip: str) -> dict:
            return {
                "kind": "Service",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": "1",
                    "creationTimestamp": rfc3339(self.created),
                    "labels": {"app": selector.get("app", ""), "app.kubernetes.io/instance": RELEASE},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": cluster_ip,
                    "clusterIPs": [cluster_ip],
                    "ports": ports,
                    "selector": selector,
                    "sessionAffinity": "None",
                },
                "status": {"loadBalancer": {}},
            }

        return {
            COST_MODEL_DEPLOYMENT: service(
                COST_MODEL_DEPLOYMENT,
                [
                    {"name": "tcp-model", "protocol": "TCP", "port": 9003, "targetPort": 9003},
                    {"name": "tcp-frontend", "protocol": "TCP", "port": 9090, "targetPort": 9090},
                ],
                {
                    "app": "cost-analyzer",
                    "app.kubernetes.io/name": "cost-analyzer",
                    "app.kubernetes.io/instance": RELEASE,
                },
                "10.96.12.34",
            ),
            "kubecost-prometheus-server": service(
                "kubecost-prometheus-server",
                [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9090}],
                {"app": "prometheus", "component": "server", "release": RELEASE},
                "10.96.56.78",
            ),
        }
