"""RBAC for the simulated API server: every request checked against one namespaced Role.

``serve --rbac-role deploy/rbac.yaml`` loads the Role from a YAML file (it may also hold the
ServiceAccount and the RoleBinding: the binding's subject names the user in messages). Each
request is turned into request attributes the way kube-apiserver does (verb, API group,
resource, subresource, namespace, name) and allowed only if one of the Role's rules grants it;
otherwise it is refused with 403 and the Status body a real API server sends:

    pods "x" is forbidden: User "system:serviceaccount:kubecost:kubecost-etl" cannot create
    resource "pods/exec" in API group "" in the namespace "kubecost"

As in Kubernetes:
- the Role only grants inside its own namespace: cluster-scoped requests (``/api/v1/pods``,
  namespaces) are refused;
- discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/apps/v1``...) is allowed to
  every authenticated user (the ``system:discovery`` ClusterRole);
- ``GET`` with a name is ``get``, without one ``list`` (``watch`` with ``?watch=true``), ``POST``
  ``create``, ``PUT`` ``update``, ``PATCH`` ``patch``, ``DELETE`` ``delete`` or ``deletecollection``;
- ``resourceNames`` restrict by the name in the path, as written there (the service proxy's
  ``kubecost-cost-analyzer:9090`` is the name ``kubecost-cost-analyzer:9090``);
- a WebSocket ``GET`` of ``pods/exec`` (what the Python client sends) also needs ``create``, as
  kube-apiserver 1.35+ checks (``AuthorizePodWebsocketUpgradeCreatePermission``): a Role made
  for older servers with ``get`` only would break on upgrade.

Every decision is recorded: ``report()`` lists what the Role grants (one entry per API group,
resource and verb), what was used and by which rule, and what was denied
(``GET /_sim/rbac`` returns it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from .apimachinery import ApiError

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_WEBSOCKET_CREATE_SUBRESOURCES = {"exec", "attach", "portforward"}
_TRUE = ("true", "1")


class RbacFileError(ValueError):
    pass


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC decides on, for a resource request (``resource`` is None for a non-resource path)."""

    verb: str
    path: str
    api_group: str = ""
    resource: str | None = None
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else (self.resource or "")


def request_attributes(method: str, path: str, query: dict) -> RequestAttributes:
    """kube-apiserver's RequestInfo for a request path (``/api/v1/...``, ``/apis/<group>/<version>/...``)."""
    parts = [p for p in path.strip("/").split("/") if p]
    method = method.upper()
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        rest = None
    if not rest:  # /version, /api, /api/v1, /apis/apps/v1: no resource
        return RequestAttributes(verb=method.lower() if method != "GET" else "get", path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        namespace = rest[1]  # a namespace object itself: its own namespace, as the API server has it
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if method == "GET":
        if query.get("watch", "").lower() in _TRUE:
            verb = "watch"
        else:
            verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return RequestAttributes(
        verb=verb,
        path=path,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


_DISCOVERY = ("/version", "/api", "/apis", "/openapi", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class Rule:
    index: int
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...]

    def grants(self, group: str, resource: str, verb: str, name: str) -> bool:
        return (
            ("*" in self.api_groups or group in self.api_groups)
            and (
                "*" in self.resources
                or resource in self.resources
                or ("/" in resource and f"*/{resource.split('/', 1)[1]}" in self.resources)
            )
            and ("*" in self.verbs or verb in self.verbs)
            and (not self.resource_names or name in self.resource_names)
        )

    def as_dict(self) -> dict:
        rule = {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        return rule


class RoleAuthorizer:
    """Decides requests with one Role's rules and records every decision."""

    def __init__(self, name: str, namespace: str, rules: list[Rule], user: str):
        self.name = name
        self.namespace = namespace
        self.rules = rules
        self.user = user
        self._lock = threading.Lock()
        self._used: dict[tuple, int] = {}  # (rule index, group, resource, verb) -> count
        self._denied: list[dict] = []

    # ------------------------------------------------------------------------- loading

    @classmethod
    def from_file(cls, path: Path) -> RoleAuthorizer:
        try:
            documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise RbacFileError(f"--rbac-role {path}: cannot read it: {error}") from None
        return cls.from_documents(documents, str(path))

    @classmethod
    def from_documents(cls, documents: list[dict], where: str = "role") -> RoleAuthorizer:
        kinds = [d.get("kind") for d in documents]
        cluster_wide = [k for k in kinds if k in ("ClusterRole", "ClusterRoleBinding")]
        if cluster_wide:
            raise RbacFileError(
                f"{where}: holds {', '.join(cluster_wide)}: the simulator enforces one namespaced Role"
            )
        roles = [d for d in documents if d.get("kind") == "Role"]
        if len(roles) != 1:
            raise RbacFileError(f"{where}: needs exactly one kind: Role document, found {len(roles)}")
        role = roles[0]
        metadata = role.get("metadata") or {}
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not name or not namespace:
            raise RbacFileError(f"{where}: the Role needs metadata.name and metadata.namespace")
        rules = []
        for index, raw in enumerate(role.get("rules") or []):
            verbs, resources = raw.get("verbs") or [], raw.get("resources") or []
            if not verbs or not resources or "apiGroups" not in raw:
                raise RbacFileError(
                    f"{where}: rules[{index}] needs apiGroups, resources and verbs "
                    "(nonResourceURLs belong in a ClusterRole)"
                )
            rules.append(
                Rule(
                    index,
                    tuple(raw["apiGroups"]),
                    tuple(resources),
                    tuple(verbs),
                    tuple(raw.get("resourceNames") or ()),
                )
            )
        return cls(name, namespace, rules, cls._user(documents, name, namespace, where))

    @staticmethod
    def _user(documents: list[dict], role: str, namespace: str, where: str) -> str:
        for binding in (d for d in documents if d.get("kind") == "RoleBinding"):
            ref = binding.get("roleRef") or {}
            if ref.get("kind") != "Role" or ref.get("name") != role:
                raise RbacFileError(
                    f"{where}: RoleBinding {binding.get('metadata', {}).get('name')!r} does not "
                    f"refer to Role {role!r}"
                )
            for subject in binding.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount":
                    return f"system:serviceaccount:{subject.get('namespace', namespace)}:{subject['name']}"
                if subject.get("kind") == "User":
                    return subject["name"]
        return "kubecost-sim"

    # ------------------------------------------------------------------------ deciding

    def check(self, method: str, path: str, query: dict, websocket: bool = False) -> None:
        """Raise a 403 ``ApiError`` unless the Role allows the request."""
        attributes = request_attributes(method, path, query)
        if attributes.resource is None:
            if path == "/" or any(path == p or path.startswith(p + "/") for p in _DISCOVERY):
                return
            self._deny(attributes, attributes.verb)
        verbs = [attributes.verb]
        if (
            websocket
            and attributes.verb == "get"
            and attributes.subresource in _WEBSOCKET_CREATE_SUBRESOURCES
        ):
            verbs.append("create")
        for verb in verbs:
            rule = self._rule_for(attributes, verb)
            if rule is None:
                self._deny(attributes, verb)
            with self._lock:
                key = (rule.index, attributes.api_group, attributes.qualified_resource, verb)
                self._used[key] = self._used.get(key, 0) + 1

    def _rule_for(self, attributes: RequestAttributes, verb: str) -> Rule | None:
        if attributes.namespace != self.namespace:
            return None  # a Role grants nothing cluster-scoped, nor in other namespaces
        return next(
            (
                rule
                for rule in self.rules
                if rule.grants(attributes.api_group, attributes.qualified_resource, verb, attributes.name)
            ),
            None,
        )

    def _deny(self, attributes: RequestAttributes, verb: str):
        with self._lock:
            self._denied.append(
                {
                    "verb": verb,
                    "apiGroup": attributes.api_group,
                    "resource": attributes.qualified_resource,
                    "namespace": attributes.namespace,
                    "name": attributes.name,
                    "path": attributes.path,
                }
            )
        raise forbidden(attributes, verb, self.user)

    # ----------------------------------------------------------------------- reporting

    def granted(self) -> list[dict]:
        """One entry per (rule, API group, resource, verb) the Role grants (wildcards as written)."""
        return [
            {"rule": rule.index, "apiGroup": group, "resource": resource, "verb": verb}
            for rule in self.rules
            for group in rule.api_groups
            for resource in rule.resources
            for verb in rule.verbs
        ]

    def report(self) -> dict:
        with self._lock:
            used = [
                {"rule": index, "apiGroup": group, "resource": resource, "verb": verb, "count": count}
                for (index, group, resource, verb), count in sorted(self._used.items())
            ]
            denied = list(self._denied)
        return {
            "role": self.name,
            "namespace": self.namespace,
            "user": self.user,
            "rules": [rule.as_dict() for rule in self.rules],
            "granted": self.granted(),
            "used": used,
            "denied": denied,
        }


def forbidden(attributes: RequestAttributes, verb: str, user: str) -> ApiError:
    """The 403 Status kube-apiserver's RBAC authorizer answers with."""
    if attributes.resource is None:
        return ApiError(
            403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path "{attributes.path}"', {}
        )
    subject = f'{attributes.resource} "{attributes.name}"' if attributes.name else attributes.resource
    if attributes.api_group:
        subject = (
            f'{attributes.resource}.{attributes.api_group} "{attributes.name}"'
            if attributes.name
            else f"{attributes.resource}.{attributes.api_group}"
        )
    where = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    details = {"kind": attributes.resource}
    if attributes.name:
        details["name"] = attributes.name
    if attributes.api_group:
        details["group"] = attributes.api_group
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user}" cannot {verb} resource '
        f'"{attributes.qualified_resource}" in API group "{attributes.api_group}" '
        f"{where}",
        details,
    )
