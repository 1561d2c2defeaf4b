"""A cluster's share and import settings: the ``share:`` mapping of a cluster entry (all keys optional).

```yaml
clusters:
  - id: prod-east
    share:
      object_store: {conn_id: aws_support, bucket: kubecost-support}  # default: backup.object_store
      link_expiry_hours: 24        # download links (S3 at most 168)
      compression_level: 6         # gzip level of the bundle (6: what gzip and tar czf use)
      max_window_days: 400         # longest window a bundle may cover
      max_import_file_bytes: 1073741824  # a tar member claiming more is refused (a set file is MBs)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubecost_etl.errors import ConfigError

if TYPE_CHECKING:
    from kubecost_etl.config import ObjectStoreRef

MAX_LINK_HOURS = 7 * 24  # S3 SigV4 presigned links end after a week at most
_KEYS = {"object_store", "link_expiry_hours", "compression_level", "max_window_days", "max_import_file_bytes"}


@dataclass(frozen=True)
class ShareSettings:
    object_store: ObjectStoreRef | None = None  # None: the cluster's backup store
    link_expiry_hours: int = 24
    compression_level: int = 6
    max_window_days: int = 400
    max_import_file_bytes: int = 1 << 30


def parse_share_settings(
    raw: Any, where: str, parse_store: Callable[[Any, str], ObjectStoreRef]
) -> ShareSettings:
    """``raw`` is the cluster's ``share`` mapping (None: defaults); ``parse_store`` reads an
    object_store form.
    """
    if raw is None:
        return ShareSettings()
    where = f"{where}: share"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    values: dict[str, Any] = {}
    if raw.get("object_store") is not None:
        values["object_store"] = parse_store(raw["object_store"], f"{where}.object_store")
    limits = {
        "link_expiry_hours": range(1, MAX_LINK_HOURS + 1),
        "compression_level": range(1, 10),
        "max_window_days": range(1, 100_000),
        "max_import_file_bytes": range(1, 1 << 40),
    }
    for key, allowed in limits.items():
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
                raise ConfigError(
                    f"{where}.{key}: expected a whole number from {allowed.start} to "
                    f"{allowed.stop - 1}, got {value!r}"
                )
            values[key] = value
    return ShareSettings(**values)
