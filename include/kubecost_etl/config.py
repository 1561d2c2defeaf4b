"""The project's configuration file (named by ``KUBECOST_ETL_CONFIG``).

Every mistake is reported as a ``ConfigError`` that names the cluster and the field, before any
pipeline touches a pod or a bucket: unknown keys (the key sets are the dataclasses' fields),
duplicate ids, bad values, unreadable files, and a ``backup_schedule`` that is not a valid cron
expression or Airflow preset. ``python -m kubecost_etl check-config FILE`` runs the same checks.
Credentials are never read from this file into messages: a YAML syntax error names the line and
column but never quotes the line, and every ``repr`` hides secrets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from kubecost_etl.backup.settings import (
    BackupSettings,
    Compression,
    ObjectStoreRef,
    parse_backup_settings,
    parse_store,
    positive_int,
)
from kubecost_etl.errors import ConfigError, ParamsError
from kubecost_etl.federation.settings import FederatedSettings, parse_federated_settings
from kubecost_etl.health.settings import HealthSettings, parse_health_settings
from kubecost_etl.lease import LeaseSettings, parse_lease_settings
from kubecost_etl.prune.settings import RetentionSettings, parse_retention_settings
from kubecost_etl.redact import describe_yaml_error
from kubecost_etl.repair.settings import RepairSettings, parse_repair_settings
from kubecost_etl.schedules import CONFIG_ENV, DEFAULT_SCHEDULE, check_schedule
from kubecost_etl.share.settings import ShareSettings, parse_share_settings

__all__ = [
    "CONFIG_ENV",
    "AlertSettings",
    "BackupSettings",
    "ClusterConfig",
    "Compression",
    "ConfigError",
    "DebugContainer",
    "Notifier",
    "ObjectStoreRef",
    "ProjectConfig",
    "check_schedule",
    "load_alert_settings",
    "load_config",
    "parse_config",
]

_CLUSTER_ID = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


class DebugContainer(StrEnum):
    """When to read the ETL files through an ephemeral debug container."""

    AUTO = "auto"  # only when cost-model has no tar
    ALWAYS = "always"
    NEVER = "never"


class Notifier(StrEnum):
    NONE = "none"
    SLACK = "slack"
    EMAIL = "email"


@dataclass(frozen=True)
class ClusterConfig:
    id: str
    namespace: str = "kubecost"
    selector: str = "app=cost-analyzer"
    container: str = "cost-model"
    etl_path: str = "/var/configs/db/etl"
    kubernetes_conn_id: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    debug_image: str = "busybox:1.36"
    use_debug_container: DebugContainer = DebugContainer.AUTO
    debug_container_seconds: int = (
        4 * 3600
    )  # a debug container's lifetime (its `sleep`); it then ends by itself
    hourly_hours: int = 49
    backup: BackupSettings | None = None
    repair: RepairSettings = field(default_factory=RepairSettings)
    share: ShareSettings = field(default_factory=ShareSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    federated: FederatedSettings | None = None
    retention: RetentionSettings | None = None  # None: the prune pipeline leaves this cluster alone


@dataclass(frozen=True)
class AlertSettings:
    notifier: Notifier = Notifier.NONE
    slack_conn_id: str = "slack_default"
    slack_channel: str | None = None
    email_to: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"


@dataclass(frozen=True)
class ProjectConfig:
    clusters: tuple[ClusterConfig, ...]
    backup_schedule: str | None = DEFAULT_SCHEDULE
    alerts: AlertSettings = field(default_factory=AlertSettings)
    source: str = "<memory>"
    health: HealthSettings = field(default_factory=HealthSettings)
    prune_schedule: str | None = DEFAULT_SCHEDULE

    def cluster(self, cluster_id: str | None) -> ClusterConfig:
        if cluster_id in (None, ""):
            if len(self.clusters) == 1:
                return self.clusters[0]
            raise ConfigError(f"name a cluster: {len(self.clusters)} are configured ({self.cluster_ids()})")
        for cluster in self.clusters:
            if cluster.id == cluster_id:
                return cluster
        raise ConfigError(f"unknown cluster {cluster_id!r}; configured: {self.cluster_ids()}")

    def cluster_ids(self) -> list[str]:
        return [c.id for c in self.clusters]

    def select(self, cluster_ids: list[str] | None) -> list[ClusterConfig]:
        """The clusters a run names (all when none are named); a cluster named twice is refused."""
        if not cluster_ids:
            return list(self.clusters)
        twice = sorted({cid for cid in cluster_ids if cluster_ids.count(cid) > 1}, key=str)
        if twice:
            raise ParamsError(
                f"clusters: {twice} named more than once; name each cluster once "
                "(two backups of one cluster would run side by side)"
            )
        return [self.cluster(cid) for cid in cluster_ids]

    def summary(self) -> str:
        """A few lines for ``check-config``: what this file configures."""
        lines = [
            f"{self.source}: {len(self.clusters)} cluster(s); backup_schedule "
            f"{self.backup_schedule or 'none (manual runs only)'}; alerts: {self.alerts.notifier}"
        ]
        for cluster in self.clusters:
            store = cluster.backup.object_store if cluster.backup else None
            where = (
                "no backup settings"
                if store is None
                else f"backups to {store.config_file or store.conn_id or (store.inline or {}).get('type')}"
            )
            access = cluster.kubernetes_conn_id or cluster.kubeconfig or "in-cluster"
            lines.append(f"  {cluster.id}: {cluster.namespace}/{cluster.selector} via {access}; {where}")
        return "\n".join(lines)


def _keys(cls, *drop: str) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls)) - set(drop)


_TOP_KEYS = _keys(ProjectConfig, "source") | {"defaults", "federate_schedule"}  # read by airflow/schedule.py
_CLUSTER_KEYS = _keys(ClusterConfig)
_ALERT_KEYS = _keys(AlertSettings)
_STRING_KEYS = (
    "namespace",
    "selector",
    "container",
    "etl_path",
    "kubernetes_conn_id",
    "kubeconfig",
    "context",
    "debug_image",
    "use_debug_container",
)


def load_config(path: str | os.PathLike | None = None) -> ProjectConfig:
    """Read and validate the configuration file (default: ``$KUBECOST_ETL_CONFIG``)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise ConfigError(f"{CONFIG_ENV} is not set: point it at the project's YAML configuration")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # never PyYAML's own text: it quotes the line, which may hold a secret
        raise ConfigError(f"configuration {path} is not valid YAML: {describe_yaml_error(exc)}") from None
    return parse_config(raw, source=str(path), base_dir=path.parent)


def load_alert_settings(path: str | os.PathLike | None = None) -> AlertSettings:
    """Only the ``alerts`` section: alerting must still work when the rest of the file is wrong."""
    path = Path(path or os.environ.get(CONFIG_ENV) or "")
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read alert settings from {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot read alert settings from {path}: not valid YAML: {describe_yaml_error(exc)}"
        ) from None
    return _parse_alerts(raw.get("alerts") if isinstance(raw, dict) else None, f"configuration {path}")


def parse_config(raw: Any, source: str = "<memory>", base_dir: Path | None = None) -> ProjectConfig:
    where = f"configuration {source}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with 'clusters:' at the top")
    _reject_unknown(raw, _TOP_KEYS, where)
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: defaults: expected a mapping")
    _reject_unknown(defaults, _CLUSTER_KEYS - {"id"}, f"{where}: defaults")
    clusters_raw = raw.get("clusters")
    if not isinstance(clusters_raw, list) or not clusters_raw:
        raise ConfigError(f"{where}: clusters: expected a non-empty list")
    clusters: list[ClusterConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(clusters_raw):
        cluster = _parse_cluster(item, defaults, index, base_dir)
        if cluster.id in seen:
            raise ConfigError(f"cluster {cluster.id!r}: id: duplicate (ids must be unique)")
        seen.add(cluster.id)
        clusters.append(cluster)
    schedule = check_schedule(raw.get("backup_schedule", DEFAULT_SCHEDULE), f"{where}: backup_schedule")
    prune = check_schedule(raw.get("prune_schedule", DEFAULT_SCHEDULE), f"{where}: prune_schedule")
    return ProjectConfig(
        tuple(clusters),
        schedule,
        _parse_alerts(raw.get("alerts"), where),
        source,
        parse_health_settings(raw.get("health"), where),
        prune_schedule=prune,
    )


def _parse_cluster(item: Any, defaults: dict, index: int, base_dir: Path | None) -> ClusterConfig:
    if not isinstance(item, dict):
        raise ConfigError(f"clusters[{index}]: expected a mapping with at least 'id'")
    cid = item.get("id")
    if not isinstance(cid, str) or not _CLUSTER_ID.match(cid):
        raise ConfigError(
            f"clusters[{index}]: id: {cid!r} is not a valid cluster id "
            "(lowercase letters, digits, '.', '_' and '-', at most 63 characters)"
        )
    where = f"cluster {cid!r}"
    _reject_unknown(item, _CLUSTER_KEYS, where)
    merged = {**defaults, **item}
    backup_raw = _merge_section(defaults.get("backup"), item.get("backup"), f"{where}: backup")
    if merged.get("kubernetes_conn_id") and merged.get("kubeconfig"):
        raise ConfigError(f"{where}: kubernetes_conn_id and kubeconfig: give one, not both")
    if merged.get("context") and not merged.get("kubeconfig"):
        raise ConfigError(f"{where}: context: only meaningful with kubeconfig")
    kwargs: dict[str, Any] = {"id": cid}
    for key in _STRING_KEYS:
        if key in merged and merged[key] is not None:
            value = merged[key]
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: {key}: expected a non-empty string")
            kwargs[key] = value
    if kwargs.get("kubeconfig") and base_dir and not os.path.isabs(kwargs["kubeconfig"]):
        kwargs["kubeconfig"] = str(base_dir / kwargs["kubeconfig"])
    if not kwargs.get("etl_path", "/").startswith("/"):
        raise ConfigError(f"{where}: etl_path: must be an absolute path in the pod")
    if "use_debug_container" in kwargs:
        kwargs["use_debug_container"] = _choice(
            DebugContainer, kwargs["use_debug_container"], f"{where}: use_debug_container"
        )
    if "hourly_hours" in merged:
        kwargs["hourly_hours"] = positive_int(merged["hourly_hours"], f"{where}: hourly_hours")
    if "debug_container_seconds" in merged:
        kwargs["debug_container_seconds"] = positive_int(
            merged["debug_container_seconds"], f"{where}: debug_container_seconds"
        )
    if backup_raw is not None:
        kwargs["backup"] = parse_backup_settings(backup_raw, where, base_dir)
    repair_raw = _merge_section(defaults.get("repair"), item.get("repair"), f"{where}: repair")
    kwargs["repair"] = parse_repair_settings(repair_raw, where)
    kwargs["share"] = parse_share_settings(
        _merge_section(defaults.get("share"), item.get("share"), f"{where}: share"),
        where,
        lambda raw, at: parse_store(raw, at, base_dir),
    )
    lease_raw = _merge_section(defaults.get("lease"), item.get("lease"), f"{where}: lease")
    kwargs["lease"] = parse_lease_settings(lease_raw, where)
    kwargs["federated"] = parse_federated_settings(
        _merge_section(defaults.get("federated"), item.get("federated"), f"{where}: federated"),
        cid,
        where,
        base_dir,
        parse_store,
    )
    if kwargs.get("backup") and kwargs["backup"].source == "federated" and kwargs["federated"] is None:
        raise ConfigError(
            f"{where}: backup.source: federated needs a federated: block (which bucket to read)"
        )
    retention_raw = _merge_section(defaults.get("retention"), item.get("retention"), f"{where}: retention")
    kwargs["retention"] = parse_retention_settings(retention_raw, where)
    return ClusterConfig(**kwargs)


def _merge_section(default: Any, own: Any, where: str) -> dict | None:
    """A cluster's section over the defaults' one, key by key."""
    if default is None and own is None:
        return None
    for value in (default, own):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
    return {**(default or {}), **(own or {})}


def _parse_alerts(raw: Any, where: str) -> AlertSettings:
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: alerts: expected a mapping")
    _reject_unknown(raw, _ALERT_KEYS, f"{where}: alerts")
    notifier = _choice(Notifier, raw.get("notifier", Notifier.NONE), f"{where}: alerts.notifier")
    email_to = raw.get("email_to") or ()
    if isinstance(email_to, str):
        email_to = (email_to,)
    if not isinstance(email_to, list | tuple) or not all(isinstance(a, str) and "@" in a for a in email_to):
        raise ConfigError(f"{where}: alerts.email_to: expected an address or a list of addresses")
    if notifier == Notifier.EMAIL and not email_to:
        raise ConfigError(f"{where}: alerts.email_to: needed when notifier is email")
    texts = {}
    for key in ("slack_conn_id", "slack_channel", "smtp_conn_id"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ConfigError(f"{where}: alerts.{key}: expected a non-empty string")
            texts[key] = raw[key]
    return AlertSettings(notifier=notifier, email_to=tuple(email_to), **texts)


def _reject_unknown(raw: dict, known, where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _choice(kind: type[StrEnum], value: Any, where: str):
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(v.value for v in kind)}") from None
