"""Constants and helpers the Kubernetes API handlers share: version, discovery resources, JSON replies,
query flags, times."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from aiohttp import web

from .. import apimachinery as api

log = logging.getLogger(__name__)

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_ALL_VERBS = ["get", "list", "watch"]
CORE_RESOURCES = [
    {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": _ALL_VERBS,
        "shortNames": ["ns"],
    },
    {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["delete", *_ALL_VERBS],
        "shortNames": ["po"],
        "categories": ["all"],
    },
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {
        "name": "pods/exec",
        "singularName": "",
        "namespaced": True,
        "kind": "PodExecOptions",
        "verbs": ["create", "get"],
    },
    {
        "name": "pods/ephemeralcontainers",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get", "patch"],
    },
    {
        "name": "pods/proxy",
        "singularName": "",
        "namespaced": True,
        "kind": "PodProxyOptions",
        "verbs": ["create", "delete", "get", "patch", "update"],
    },
    {
        "name": "services",
        "singularName": "service",
        "namespaced": True,
        "kind": "Service",
        "verbs": _ALL_VERBS,
        "shortNames": ["svc"],
        "categories": ["all"],
    },
    {
        "name": "services/proxy",
        "singularName": "",
        "namespaced": True,
        "kind": "ServiceProxyOptions",
        "verbs": ["create", "delete", "get", "patch", "update"],
    },
    {
        "name": "events",
        "singularName": "event",
        "namespaced": True,
        "kind": "Event",
        "verbs": ["list"],
        "shortNames": ["ev"],
    },
]
APPS_RESOURCES = [
    {
        "name": "deployments",
        "singularName": "deployment",
        "namespaced": True,
        "kind": "Deployment",
        "verbs": ["get", "list", "patch", "watch"],
        "shortNames": ["deploy"],
        "categories": ["all"],
    },
    {
        "name": "deployments/scale",
        "singularName": "",
        "namespaced": True,
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
        "verbs": ["get", "patch", "update"],
    },
    {
        "name": "deployments/status",
        "singularName": "",
        "namespaced": True,
        "kind": "Deployment",
        "verbs": ["get"],
    },
    {
        "name": "replicasets",
        "singularName": "replicaset",
        "namespaced": True,
        "kind": "ReplicaSet",
        "verbs": _ALL_VERBS,
        "shortNames": ["rs"],
        "categories": ["all"],
    },
]
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
}
TRUE_VALUES = ("true", "1")
# ports of the pods' processes -> which simulated app serves them
POD_PORT_APPS = {9003: "model", 9090: "frontend"}


def reply(document: dict, status: int = 200) -> web.Response:
    return web.json_response(document, status=status)


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in TRUE_VALUES


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise api.bad_request(
            f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse "{text}" as "2006"'
        ) from None


def format_timestamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
