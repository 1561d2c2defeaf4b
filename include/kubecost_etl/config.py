"""The project's configuration file (named by ``KUBECOST_ETL_CONFIG``).

Every mistake is reported as a ``ConfigError`` that names the cluster and the field, before any
pipeline touches a pod or a bucket. Credentials are never read from this file into messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kubecost_etl.errors import ConfigError
from kubecost_etl.health.settings import HealthSettings, parse_health_settings
from kubecost_etl.repair.settings import RepairSettings, parse_repair_settings

CONFIG_ENV = "KUBECOST_ETL_CONFIG"
_CLUSTER_ID = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_COMPRESSIONS = ("zstd", "gzip")
_NOTIFIERS = ("none", "slack", "email")


@dataclass(frozen=True)
class ObjectStoreRef:
    """Where a cluster's backups go: a Thanos ``object-store.yaml`` (file or inline) or an Airflow connection."""

    config_file: str | None = None
    inline: dict | None = None  # a Thanos-format mapping written straight into this file
    conn_id: str | None = None
    bucket: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class BackupSettings:
    object_store: ObjectStoreRef
    compression: str = "zstd"
    compression_level: int = 3
    verify_sample: int = 16  # objects downloaded and re-hashed per verification (rotating)
    batch_files: int = 400  # files per exec tar call (keeps command lines short and retries cheap)
    hash_in_pod: bool = True


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
    use_debug_container: str = "auto"  # auto | always | never
    hourly_hours: int = 49
    backup: BackupSettings | None = None
    repair: RepairSettings = field(default_factory=RepairSettings)


@dataclass(frozen=True)
class AlertSettings:
    notifier: str = "none"
    slack_conn_id: str = "slack_default"
    slack_channel: str | None = None
    email_to: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"


@dataclass(frozen=True)
class ProjectConfig:
    clusters: tuple[ClusterConfig, ...]
    backup_schedule: str | None = "@daily"
    alerts: AlertSettings = field(default_factory=AlertSettings)
    source: str = "<memory>"
    health: HealthSettings = field(default_factory=HealthSettings)

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
        if not cluster_ids:
            return list(self.clusters)
        return [self.cluster(cid) for cid in cluster_ids]


_TOP_KEYS = {"clusters", "defaults", "backup_schedule", "alerts", "health"}
_CLUSTER_KEYS = {
    "id", "namespace", "selector", "container", "etl_path", "kubernetes_conn_id", "kubeconfig",
    "context", "debug_image", "use_debug_container", "hourly_hours", "backup", "repair",
}
_BACKUP_KEYS = {"object_store", "compression", "compression_level", "verify_sample", "batch_files", "hash_in_pod"}
_STORE_KEYS = {"config_file", "conn_id", "bucket", "prefix", "type", "config"}
_ALERT_KEYS = {"notifier", "slack_conn_id", "slack_channel", "email_to", "smtp_conn_id"}


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
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration {path} is not valid YAML: {exc}") from None
    return parse_config(raw, source=str(path), base_dir=path.parent)


def load_alert_settings(path: str | os.PathLike | None = None) -> AlertSettings:
    """Only the ``alerts`` section: alerting must still work when the rest of the file is wrong."""
    path = Path(path or os.environ.get(CONFIG_ENV) or "")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read alert settings from {path}: {exc}") from None
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
    schedule = raw.get("backup_schedule", "@daily")
    if schedule is not None and not isinstance(schedule, str):
        raise ConfigError(f"{where}: backup_schedule: expected a cron expression, preset or null")
    return ProjectConfig(tuple(clusters), schedule, _parse_alerts(raw.get("alerts"), where), source,
                         parse_health_settings(raw.get("health"), where))


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
    for key in ("namespace", "selector", "container", "etl_path", "kubernetes_conn_id", "kubeconfig",
                "context", "debug_image", "use_debug_container"):
        if key in merged and merged[key] is not None:
            value = merged[key]
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: {key}: expected a non-empty string")
            kwargs[key] = value
    if kwargs.get("kubeconfig") and base_dir and not os.path.isabs(kwargs["kubeconfig"]):
        kwargs["kubeconfig"] = str(base_dir / kwargs["kubeconfig"])
    if not kwargs.get("etl_path", "/").startswith("/"):
        raise ConfigError(f"{where}: etl_path: must be an absolute path in the pod")
    if kwargs.get("use_debug_container", "auto") not in ("auto", "always", "never"):
        raise ConfigError(f"{where}: use_debug_container: expected auto, always or never")
    if "hourly_hours" in merged:
        kwargs["hourly_hours"] = _positive_int(merged["hourly_hours"], f"{where}: hourly_hours")
    if backup_raw is not None:
        kwargs["backup"] = _parse_backup(backup_raw, where, base_dir)
    repair_raw = _merge_section(defaults.get("repair"), item.get("repair"), f"{where}: repair")
    kwargs["repair"] = parse_repair_settings(repair_raw, where)
    return ClusterConfig(**kwargs)


def _merge_section(default: Any, own: Any, where: str) -> dict | None:
    """A cluster's section over the defaults' one, key by key."""
    if default is None and own is None:
        return None
    for value in (default, own):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
    return {**(default or {}), **(own or {})}


def _parse_backup(raw: dict, where: str, base_dir: Path | None) -> BackupSettings:
    _reject_unknown(raw, _BACKUP_KEYS, f"{where}: backup")
    if "object_store" not in raw:
        raise ConfigError(f"{where}: backup.object_store: missing (where should backups go?)")
    store = _parse_store(raw["object_store"], f"{where}: backup.object_store", base_dir)
    compression = raw.get("compression", "zstd")
    if compression not in _COMPRESSIONS:
        raise ConfigError(f"{where}: backup.compression: {compression!r} is not one of {_COMPRESSIONS}")
    settings = BackupSettings(object_store=store, compression=compression)
    level_range = range(1, 23) if compression == "zstd" else range(1, 10)
    if "compression_level" in raw:
        level = _positive_int(raw["compression_level"], f"{where}: backup.compression_level")
        if level not in level_range:
            raise ConfigError(f"{where}: backup.compression_level: {level} out of range for {compression}")
        settings = replace(settings, compression_level=level)
    elif compression == "gzip":
        settings = replace(settings, compression_level=6)
    for key in ("verify_sample", "batch_files"):
        if key in raw:
            settings = replace(settings, **{key: _positive_int(raw[key], f"{where}: backup.{key}")})
    if "hash_in_pod" in raw:
        if not isinstance(raw["hash_in_pod"], bool):
            raise ConfigError(f"{where}: backup.hash_in_pod: expected true or false")
        settings = replace(settings, hash_in_pod=raw["hash_in_pod"])
    return settings


def _parse_store(raw: Any, where: str, base_dir: Path | None) -> ObjectStoreRef:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping (config_file, or conn_id + bucket, or type + config)")
    _reject_unknown(raw, _STORE_KEYS, where)
    forms = [name for name, present in (
        ("config_file", "config_file" in raw), ("conn_id", "conn_id" in raw), ("type", "type" in raw),
    ) if present]
    if len(forms) != 1:
        raise ConfigError(f"{where}: give exactly one of config_file, conn_id (+ bucket) or type (+ config)")
    prefix = raw.get("prefix", "") or ""
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}: prefix: expected a string")
    prefix = prefix.strip("/")
    if forms[0] == "config_file":
        path = raw["config_file"]
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: config_file: expected a path")
        if base_dir and not os.path.isabs(path):
            path = str(base_dir / path)
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{where}: config_file: {path} does not exist or is not readable")
        return ObjectStoreRef(config_file=path, prefix=prefix)
    if forms[0] == "conn_id":
        bucket = raw.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise ConfigError(f"{where}: bucket: missing (a connection needs a bucket or container name)")
        return ObjectStoreRef(conn_id=raw["conn_id"], bucket=bucket, prefix=prefix)
    inline = {k: raw[k] for k in ("type", "config") if k in raw}
    if prefix:
        inline["prefix"] = prefix
    return ObjectStoreRef(inline=inline)


def _parse_alerts(raw: Any, where: str) -> AlertSettings:
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: alerts: expected a mapping")
    _reject_unknown(raw, _ALERT_KEYS, f"{where}: alerts")
    notifier = raw.get("notifier", "none")
    if notifier not in _NOTIFIERS:
        raise ConfigError(f"{where}: alerts.notifier: {notifier!r} is not one of {_NOTIFIERS}")
    email_to = raw.get("email_to") or ()
    if isinstance(email_to, str):
        email_to = (email_to,)
    if notifier == "email" and not email_to:
        raise ConfigError(f"{where}: alerts.email_to: needed when notifier is email")
    return AlertSettings(
        notifier=notifier,
        slack_conn_id=raw.get("slack_conn_id", "slack_default"),
        slack_channel=raw.get("slack_channel"),
        email_to=tuple(email_to),
        smtp_conn_id=raw.get("smtp_conn_id", "smtp_default"),
    )


def _reject_unknown(raw: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: expected a positive whole number, got {value!r}")
    return value
