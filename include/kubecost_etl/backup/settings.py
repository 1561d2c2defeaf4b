"""A cluster's backup settings: the ``backup:`` mapping of a cluster entry (merged over ``defaults.backup``).

```yaml
backup:
  object_store: {config_file: /etc/kubecost/object-store.yaml}   # or conn_id + bucket, or type + config
  compression: zstd          # or gzip
  compression_level: 3       # zstd 1..22, gzip 1..9 (gzip's default is 6)
  verify_sample: 16          # objects re-downloaded and re-hashed per verification (rotating)
  batch_files: 400           # files per exec tar call
```

Key sets come from the dataclasses' fields, so a new setting cannot be forgotten in the check for
unknown keys. Secrets (an inline Thanos ``config:``) never appear in a ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from kubecost_etl.errors import ConfigError
from kubecost_etl.redact import REDACTED


class Compression(StrEnum):
    ZSTD = "zstd"
    GZIP = "gzip"


_LEVELS = {Compression.ZSTD: range(1, 23), Compression.GZIP: range(1, 10)}
_DEFAULT_LEVEL = {Compression.ZSTD: 3, Compression.GZIP: 6}


@dataclass(frozen=True)
class ObjectStoreRef:
    """Where a cluster's backups go: a Thanos ``object-store.yaml`` (file or inline) or an Airflow
    connection.
    """

    config_file: str | None = None
    # A Thanos-format mapping written straight into the config file: it holds keys, so no repr shows it.
    inline: dict | None = field(default=None, repr=False)
    conn_id: str | None = None
    bucket: str | None = None
    prefix: str = ""

    def __repr__(self) -> str:
        inline = f", inline={{'type': {self.inline.get('type')!r}, ...: {REDACTED}}}" if self.inline else ""
        return (
            f"ObjectStoreRef(config_file={self.config_file!r}{inline}, conn_id={self.conn_id!r}, "
            f"bucket={self.bucket!r}, prefix={self.prefix!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class BackupSettings:
    object_store: ObjectStoreRef
    compression: Compression = Compression.ZSTD
    compression_level: int = 3
    verify_sample: int = 16  # objects downloaded and re-hashed per verification (rotating)
    batch_files: int = 400  # files per exec tar call (keeps command lines short and retries cheap)
    source: str = "pod"  # pod | federated (the cluster's federated: bucket copy instead of the pod)


BACKUP_KEYS = frozenset(f.name for f in fields(BackupSettings))
# The object_store mapping: the reference's own fields, less the parsed "inline", plus the Thanos form's keys.
STORE_KEYS = frozenset({f.name for f in fields(ObjectStoreRef)} - {"inline"} | {"type", "config"})


def parse_backup_settings(raw: dict, where: str, base_dir: Path | None) -> BackupSettings:
    """Validate a cluster's merged ``backup:`` mapping; ``where`` names the cluster in messages."""
    _reject_unknown(raw, BACKUP_KEYS, f"{where}: backup")
    if "object_store" not in raw:
        raise ConfigError(f"{where}: backup.object_store: missing (where should backups go?)")
    store = parse_store(raw["object_store"], f"{where}: backup.object_store", base_dir)
    try:
        compression = Compression(raw.get("compression", Compression.ZSTD))
    except (ValueError, TypeError):
        raise ConfigError(
            f"{where}: backup.compression: {raw.get('compression')!r} is not one of "
            f"{tuple(c.value for c in Compression)}"
        ) from None
    settings = BackupSettings(
        object_store=store, compression=compression, compression_level=_DEFAULT_LEVEL[compression]
    )
    if "compression_level" in raw:
        level = positive_int(raw["compression_level"], f"{where}: backup.compression_level")
        if level not in _LEVELS[compression]:
            raise ConfigError(f"{where}: backup.compression_level: {level} out of range for {compression}")
        settings = replace(settings, compression_level=level)
    for key in ("verify_sample", "batch_files"):
        if key in raw:
            settings = replace(settings, **{key: positive_int(raw[key], f"{where}: backup.{key}")})
    if raw.get("source", "pod") not in ("pod", "federated"):
        raise ConfigError(f"{where}: backup.source: {raw['source']!r} is not one of ('pod', 'federated')")
    return replace(settings, source=raw.get("source", "pod"))


def parse_store(raw: Any, where: str, base_dir: Path | None) -> ObjectStoreRef:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping (config_file, or conn_id + bucket, or type + config)")
    _reject_unknown(raw, STORE_KEYS, where)
    forms = [name for name in ("config_file", "conn_id", "type") if name in raw]
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
        if not isinstance(raw["conn_id"], str) or not raw["conn_id"]:
            raise ConfigError(f"{where}: conn_id: expected a non-empty string")
        bucket = raw.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise ConfigError(f"{where}: bucket: missing (a connection needs a bucket or container name)")
        return ObjectStoreRef(conn_id=raw["conn_id"], bucket=bucket, prefix=prefix)
    inline = {k: raw[k] for k in ("type", "config") if k in raw}
    if prefix:
        inline["prefix"] = prefix
    return ObjectStoreRef(inline=inline)


def _reject_unknown(raw: dict, known, where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: expected a positive whole number, got {value!r}")
    return value
