"""The ``federated:`` block of a cluster (and of ``defaults``): where and how the cluster's ETL files
are mirrored into Kubecost's federated (or durable-backup) bucket layout.

```yaml
federated:
  object_store: {config_file: /etc/kubecost/federated-store.yaml}   # same forms as backup.object_store
  cluster_id: prod-east        # Kubecost's cluster id; defaults to the cluster's own id
  layout: federated            # federated: [<prefix>/]federated/<id>/etl/bingen/...;
                               # durable: [<prefix>/]etl/bingen/...
  retention: {"1h": "7d", "10m": "7d"}   # resolutions deleted from the bucket once their end is older
  take_over: false             # true: replace another writer's owner marker
  install_id: null             # this installation's id in the owner marker (else an Airflow Variable)
  verify_sample: 16            # objects re-downloaded and re-hashed per run (rotating)
  batch_files: 400             # files per exec tar call
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubecost_etl.errors import ConfigError

if TYPE_CHECKING:
    from kubecost_etl.config import ClusterConfig, ObjectStoreRef

_AGE = re.compile(r"^(\d+)(m|h|d|w)$")
_AGE_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RESOLUTION = re.compile(r"^\d+[a-z]+$")
_INSTALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_RETENTION = {"1h": "7d", "10m": "7d"}  # Kubecost's object-storage-cleanup keeps 1d always


class Layout(StrEnum):
    FEDERATED = "federated"  # Kubecost's federated ETL: federated/<cluster id>/etl/bingen/...
    DURABLE = "durable"  # Kubecost Enterprise's durable ETL backup: etl/bingen/...


@dataclass(frozen=True)
class FederatedSettings:
    object_store: ObjectStoreRef
    cluster_id: str = ""  # the effective id: the cluster's own id unless given
    layout: Layout = Layout.FEDERATED
    retention: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    take_over: bool = False
    install_id: str | None = None
    verify_sample: int = 16
    batch_files: int = 400

    def retention_seconds(self) -> dict[str, int]:
        return {resolution: age_seconds(age) for resolution, age in self.retention.items()}


KEYS = frozenset(f.name for f in fields(FederatedSettings))


def age_seconds(age: str) -> int:
    match = _AGE.match(age) if isinstance(age, str) else None
    if not match or int(match[1]) <= 0:
        raise ValueError(f"{age!r} is not an age like 7d, 48h, 90m or 2w")
    return int(match[1]) * _AGE_SECONDS[match[2]]


def parse_federated_settings(
    raw: dict | None,
    cluster_id: str,
    where: str,
    base_dir: Path | None,
    parse_store: Callable[[Any, str, Path | None], ObjectStoreRef],
) -> FederatedSettings | None:
    """The merged ``federated`` mapping (defaults under the cluster's own), or None when absent.

    ``parse_store`` is the config's own object-store parser (the same forms as ``backup.object_store``).
    """
    if raw is None:
        return None
    where = f"{where}: federated"
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(KEYS)}")
    if "object_store" not in raw:
        raise ConfigError(f"{where}.object_store: missing (the bucket of federated-store.yaml)")
    kwargs: dict[str, Any] = {
        "object_store": parse_store(raw["object_store"], f"{where}.object_store", base_dir)
    }
    effective = raw.get("cluster_id") or cluster_id
    if not isinstance(effective, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$", effective):
        raise ConfigError(
            f"{where}.cluster_id: {effective!r} is not a usable cluster id (letters, digits, . _ -)"
        )
    kwargs["cluster_id"] = effective
    if "layout" in raw:
        try:
            kwargs["layout"] = Layout(raw["layout"])
        except ValueError:
            raise ConfigError(
                f"{where}.layout: {raw['layout']!r} is not one of {[m.value for m in Layout]}"
            ) from None
    if "retention" in raw:
        kwargs["retention"] = _retention(raw["retention"], f"{where}.retention")
    if "take_over" in raw:
        if not isinstance(raw["take_over"], bool):
            raise ConfigError(f"{where}.take_over: expected true or false")
        kwargs["take_over"] = raw["take_over"]
    if raw.get("install_id") is not None:
        if not isinstance(raw["install_id"], str) or not _INSTALL_ID.match(raw["install_id"]):
            raise ConfigError(f"{where}.install_id: expected a short id (letters, digits, . _ -)")
        kwargs["install_id"] = raw["install_id"]
    for key in ("verify_sample", "batch_files"):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}.{key}: expected a positive whole number, got {value!r}")
            kwargs[key] = value
    return FederatedSettings(**kwargs)


def _retention(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}  # explicit null: keep everything
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: expected a mapping of resolution to age, e.g. {{"1h": "7d"}}')
    policy = {}
    for resolution, age in raw.items():
        if not isinstance(resolution, str) or not _RESOLUTION.match(resolution):
            raise ConfigError(f"{where}: {resolution!r} is not a resolution folder name like 1h, 10m or 1d")
        try:
            age_seconds(age)
        except ValueError as exc:
            raise ConfigError(f"{where}.{resolution}: {exc}") from None
        policy[resolution] = age
    return policy


def check_unique_cluster_ids(clusters: Iterable[ClusterConfig]) -> None:
    """Two configured clusters writing the same federated cluster id (or the same durable prefix) would
    overwrite each other's files: refuse the configuration before anything is written."""
    seen: dict[tuple, str] = {}
    for cluster in clusters:
        settings = cluster.federated
        if settings is None:
            continue
        ref = settings.object_store
        if settings.layout is Layout.FEDERATED:
            identity: tuple = ("federated", settings.cluster_id)
            what = f"federated.cluster_id {settings.cluster_id!r}"
        else:  # one durable mirror per bucket and prefix
            store = (
                ref.config_file,
                repr(sorted((ref.inline or {}).items())),
                ref.conn_id,
                ref.bucket,
                ref.prefix,
            )
            identity = ("durable", *store)
            what = "federated.object_store with layout durable (same bucket and prefix)"
        if identity in seen:
            raise ConfigError(
                f"cluster {cluster.id!r}: {what}: already used by cluster {seen[identity]!r} "
                "(each cluster needs its own id in the federated bucket)"
            )
        seen[identity] = cluster.id


def check_object_store(settings: FederatedSettings, cluster_id: str) -> None:
    """Parse the federated store's Thanos config now (file or inline), naming the cluster and the field:
    a missing or unreadable ``federated-store.yaml``, a ``prefix`` inside ``config:``, a bad type.
    A connection (``conn_id``) is checked by the Airflow glue, which can look connections up."""
    from kubecost_etl.storage.base import StorageConfigError
    from kubecost_etl.storage.objstore_config.parse import load_objstore_config, parse_objstore_config

    ref = settings.object_store
    try:
        if ref.config_file:
            load_objstore_config(ref.config_file)
        elif ref.inline is not None:
            parse_objstore_config(ref.inline, source="inline object_store")
    except StorageConfigError as exc:
        raise ConfigError(f"cluster {cluster_id!r}: federated.object_store: {exc}") from None
