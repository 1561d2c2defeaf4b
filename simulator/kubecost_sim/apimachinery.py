"""The generic parts of the Kubernetes API: Status errors, selectors, patches, Table output."""

from __future__ import annotations

import calendar
import copy
import re
import time
from collections.abc import Callable

from aiohttp import web

# ------------------------------------------------------------------------------- Status


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """Raised by handlers; the API turns it into a Status response."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.body = status_body(code, reason, message, details)
        self.code = code

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.code)


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]], group: str = "") -> ApiError:
    """422 Invalid; ``causes`` are (reason, field, message) like field.ErrorList."""
    texts = [f"{field}: {message}" for _, field, message in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    details = {
        "name": name,
        "kind": kind,
        "causes": [
            {"reason": reason, "message": message.split(": ", 1)[-1], "field": field}
            for reason, field, message in causes
        ],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


# ---------------------------------------------------------------------------- selectors

_REQUIREMENT = re.compile(
    r"\s*(?P<negate>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` value sets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def label_selector(text: str | None) -> Callable[[dict], bool]:
    """A predicate over a labels dict: ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``."""
    if not text:
        return lambda labels: True
    requirements = []
    for part in _split_selector(text):
        match = _REQUIREMENT.match(part)
        if not match or (match["negate"] and match["op"]):
            raise bad_request(
                f"unable to parse requirement: found '{part.strip()}', expected: "
                "identifier, '=', '==', '!=', 'in', 'notin'"
            )
        key, op, value = match["key"], (match["op"] or "").strip(), match["value"]
        if op in ("in", "notin"):
            if not value or not value.startswith("("):
                raise bad_request(f"unable to parse requirement: found '{value}', expected: '('")
            values = {v.strip() for v in value[1:-1].split(",") if v.strip()}
            requirements.append(_set_requirement(key, values, op == "in"))
        elif op:
            requirements.append(_equality_requirement(key, value or "", op == "!="))
        else:
            requirements.append(_exists_requirement(key, not match["negate"]))
    return lambda labels: all(requirement(labels or {}) for requirement in requirements)


def _set_requirement(key: str, values: set[str], inside: bool):
    if inside:
        return lambda labels: labels.get(key) in values
    return lambda labels: key not in labels or labels[key] not in values


def _equality_requirement(key: str, value: str, negate: bool):
    if negate:
        return lambda labels: labels.get(key) != value
    return lambda labels: labels.get(key) == value


def _exists_requirement(key: str, present: bool):
    return lambda labels: (key in labels) == present


def field_selector(text: str | None, getters: dict[str, Callable[[dict], str]]) -> Callable[[dict], bool]:
    """A predicate over an object for ``field=value``/``field!=value`` terms on known fields."""
    if not text:
        return lambda obj: True
    terms = []
    for part in _split_selector(text):
        match = re.fullmatch(r"\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if field not in getters:
            raise bad_request(f"field label not supported: {field}")
        terms.append((getters[field], op == "!=", value))
    return lambda obj: all((getter(obj) == value) != negate for getter, negate, value in terms)


OBJECT_FIELDS = {
    "metadata.name": lambda obj: obj["metadata"]["name"],
    "metadata.namespace": lambda obj: obj["metadata"].get("namespace", ""),
}
POD_FIELDS = {
    **OBJECT_FIELDS,
    "status.phase": lambda obj: obj["status"]["phase"],
    "spec.nodeName": lambda obj: obj["spec"].get("nodeName", ""),
    "spec.restartPolicy": lambda obj: obj["spec"].get("restartPolicy", ""),
    "spec.schedulerName": lambda obj: obj["spec"].get("schedulerName", ""),
    "spec.serviceAccountName": lambda obj: obj["spec"].get("serviceAccountName", ""),
    "status.podIP": lambda obj: obj["status"].get("podIP", ""),
    "status.nominatedNodeName": lambda obj: "",
}


# ------------------------------------------------------------------------------ patches

# Lists that strategic merge patch merges element-wise, by this key (from the API's Go types).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "imagePullSecrets": "name",
    "tolerations": None,
}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    """Kubernetes strategic merge patch for the fields this API serves.

    Maps merge recursively (``null`` deletes); lists named in the Go types' ``patchMergeKey``
    merge element by key (``$patch: delete`` removes one); other lists are replaced.
    ``$setElementOrder``/``$retainKeys`` directives are accepted and ignored.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _MERGE_KEYS.get(key) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _MERGE_KEYS[key])
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list, patch: list, key: str) -> list:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, existing in enumerate(merged) if existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def json_patch(target, operations):
    """RFC 6902 JSON patch (add, remove, replace, test, move, copy)."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document = copy.deepcopy(target)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op in ("add", "replace", "test"):
            if "value" not in operation:
                raise bad_request(
                    f"the server rejected our request due to an error in our request: "
                    f'missing value for operation "{op}"'
                )
            value = copy.deepcopy(operation["value"])
        if op == "add":
            document = _pointer_set(document, path, value, insert=True)
        elif op == "replace":
            _pointer_get(document, path)
            document = _pointer_set(document, path, value, insert=False)
        elif op == "remove":
            document = _pointer_remove(document, path)
        elif op == "test":
            if _pointer_get(document, path) != value:
                raise ApiError(422, "Invalid", f"testing value {path} failed: test failed")
        elif op in ("move", "copy"):
            moved = copy.deepcopy(_pointer_get(document, operation.get("from", "")))
            if op == "move":
                document = _pointer_remove(document, operation["from"])
            document = _pointer_set(document, path, moved, insert=True)
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return document


def _pointer_parts(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'JSON pointer must be empty or start with a "/": {path}')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _pointer_get(document, path: str):
    node = document
    for part in _pointer_parts(path):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f'request: doc is missing path: "{path}"',
            ) from None
    return node


def _pointer_set(document, path: str, value, insert: bool):
    parts = _pointer_parts(path)
    if not parts:
        return value
    parent = (
        _pointer_get(document, "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts[:-1]))
        if len(parts) > 1
        else document
    )
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", f'doc is missing path: "{path}"')
    return document


def _pointer_remove(document, path: str):
    parts = _pointer_parts(path)
    parent = _pointer_get(document, "/" + "/".join(parts[:-1])) if len(parts) > 1 else document
    try:
        if isinstance(parent, list):
            parent.pop(int(parts[-1]))
        else:
            del parent[parts[-1]]
    except (KeyError, IndexError, ValueError):
        raise ApiError(422, "Invalid", f'doc is missing path: "{path}"') from None
    return document


PATCH_TYPES = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
}


def apply_patch(content_type: str, target: dict, patch) -> dict:
    apply = PATCH_TYPES.get(content_type.split(";")[0].strip())
    if apply is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - "
            f"accepted media types include: {', '.join(PATCH_TYPES)}",
        )
    return apply(target, patch)


# -------------------------------------------------------------------------------- tables


def human_age(since: str, now: float | None = None) -> str:
    """Kubernetes' short age (``5s``, ``3m20s``, ``2d4h``...) of an RFC3339 timestamp."""
    created = calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ"))
    seconds = max(int((now or time.time()) - created), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def _column(
    name: str, kind: str = "string", priority: int = 0, description: str = "", format: str = ""
) -> dict:
    return {"name": name, "type": kind, "format": format, "description": description, "priority": priority}


def _pod_row(pod: dict) -> list:
    statuses = pod["status"].get("containerStatuses", [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    status = "Terminating" if pod["metadata"].get("deletionTimestamp") else pod["status"]["phase"]
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(pod['spec']['containers'])}",
        status,
        restarts,
        human_age(pod["metadata"]["creationTimestamp"]),
        pod["status"].get("podIP", "<none>"),
        pod["spec"].get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


def _template_cells(spec: dict) -> list:
    """The Containers, Images and Selector cells of a deployment's or replicaset's row."""
    containers = spec["template"]["spec"]["containers"]
    selector = ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items())
    return [",".join(c["name"] for c in containers), ",".join(c["image"] for c in containers), selector]


def _deployment_row(deployment: dict) -> list:
    status, spec = deployment["status"], deployment["spec"]
    return [
        deployment["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec['replicas']}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        human_age(deployment["metadata"]["creationTimestamp"]),
        *_template_cells(spec),
    ]


def _replicaset_row(replicaset: dict) -> list:
    spec, status = replicaset["spec"], replicaset["status"]
    return [
        replicaset["metadata"]["name"],
        spec["replicas"],
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        human_age(replicaset["metadata"]["creationTimestamp"]),
        *_template_cells(spec),
    ]


def _service_row(service: dict) -> list:
    spec = service["spec"]
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
    selector = ",".join(f"{k}={v}" for k, v in spec.get("selector", {}).items()) or "<none>"
    return [
        service["metadata"]["name"],
        spec["type"],
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports,
        human_age(service["metadata"]["creationTimestamp"]),
        selector,
    ]


def _namespace_row(namespace: dict) -> list:
    return [
        namespace["metadata"]["name"],
        namespace["status"]["phase"],
        human_age(namespace["metadata"]["creationTimestamp"]),
    ]


_NAME = _column("Name", format="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)
TABLES: dict[str, tuple[list[dict], Callable[[dict], list]]] = {
    "Pod": (
        [
            _NAME,
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "string"),
            _AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    "Deployment": (
        [
            _NAME,
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _AGE,
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _deployment_row,
    ),
    "ReplicaSet": (
        [
            _NAME,
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _AGE,
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _replicaset_row,
    ),
    "Service": (
        [
            _NAME,
            _column("Type"),
            _column("Cluster-IP"),
            _column("External-IP"),
            _column("Port(s)"),
            _AGE,
            _column("Selector", priority=1),
        ],
        _service_row,
    ),
    "Namespace": ([_NAME, _column("Status"), _AGE], _namespace_row),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(kind: str, objects: list[dict], resource_version: str, include_object: str = "Metadata") -> dict:
    columns, row = TABLES[kind]
    rows = []
    for obj in objects:
        if include_object == "Object":
            embedded = obj
        elif include_object == "None":
            embedded = None
        else:
            embedded = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        entry = {"cells": row(obj)}
        if embedded is not None:
            entry["object"] = embedded
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
