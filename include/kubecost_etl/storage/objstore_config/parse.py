"""Parsing `object-store.yaml` strictly, as Thanos does: unknown keys refused with a "did you mean" hint,
keys Thanos knows but this project does not use logged as ignored, secrets never echoed."""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

import yaml

from kubecost_etl.redact import redact
from kubecost_etl.storage._shared import DEFAULT_PART_SIZE, GCS_CHUNK_ALIGNMENT, S3_MIN_PART_SIZE
from kubecost_etl.storage.base import StorageConfigError
from kubecost_etl.storage.objstore_config.models import (
    AZURE_DEFAULT_ENDPOINT,
    AzureConfig,
    FilesystemConfig,
    GCSConfig,
    ObjStoreConfig,
    S3Config,
)

log = logging.getLogger(__name__)


def load_objstore_config(path: str | Path) -> ObjStoreConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StorageConfigError(f"cannot read object store config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StorageConfigError(f"cannot read object store config {path}: not UTF-8 text") from None
    return parse_objstore_config(text, source=str(path))


def parse_objstore_config(document: str | Mapping[str, Any], source: str = "<string>") -> ObjStoreConfig:
    """Parse YAML text or an already-loaded mapping; `source` names it in error messages."""
    raw = _load_yaml(document, source) if isinstance(document, str) else document
    if raw is None:
        raise StorageConfigError(f"{source}: empty object store config (expected type and config)")
    if not isinstance(raw, Mapping):
        raise StorageConfigError(f"{source}: expected a mapping with type and config at the top level")
    section = _Section(raw, "", source)

    type_value = raw.get("type")
    if not isinstance(type_value, str) or not type_value:
        raise StorageConfigError(f"{source}: type: missing (one of {', '.join(_PARSERS)})")
    store_type = type_value.upper()
    if store_type not in _PARSERS:
        raise StorageConfigError(
            f"{source}: type: {type_value!r} is not supported (supported: {', '.join(_PARSERS)})"
        )
    parser, known_keys, ignored_keys = _PARSERS[store_type]

    misplaced = sorted(set(raw) - {"type", "config", "prefix"})
    if misplaced:
        inside = [key for key in misplaced if key in known_keys]
        hint = f" (it belongs inside config: {', '.join(inside)})" if inside else ""
        raise StorageConfigError(f"{source}: unknown top-level key(s) {', '.join(misplaced)}{hint}")

    if "config" not in raw or raw["config"] is None:
        raise StorageConfigError(f"{source}: config: missing (the {store_type} settings)")
    config = section.mapping("config")
    if "prefix" in config:
        raise StorageConfigError(
            f"{source}: config.prefix: prefix must be a top-level key, next to type and config, "
            "not inside config (Thanos and Kubecost ignore it there, so objects would land outside "
            "the prefix)"
        )
    config.check_keys(known_keys, ignored_keys)
    prefix = section.string("prefix").strip("/")
    return ObjStoreConfig(store_type, parser(config), prefix, source)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # `from None`: PyYAML's own message quotes the line, which may hold a secret; its problem text
        # can quote a token too (an unknown escape, an alias name), so it is redacted as well.
        raise StorageConfigError(
            f"{source}: invalid YAML{where}: {redact(exc.problem or exc.context)}"
        ) from None
    except yaml.YAMLError:
        raise StorageConfigError(f"{source}: invalid YAML") from None


class _Section:
    """One mapping of the file, with typed getters whose errors name the key path, never the value."""

    def __init__(self, raw: Mapping[str, Any], path: str, source: str) -> None:
        self.raw = raw
        self.path = path
        self.source = source

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def error(self, key: str, message: str) -> StorageConfigError:
        return StorageConfigError(f"{self.source}: {self.path}{key}: {message}")

    def check_keys(self, known: Set[str], ignored: Set[str] = frozenset()) -> None:
        for key in self.raw:
            if key in ignored:
                log.warning(
                    "%s: %s%s is not used by kubecost-etl and is ignored", self.source, self.path, key
                )
            elif key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"
                raise self.error(str(key), f"unknown setting{hint}")

    def string(self, key: str, *, required: bool = False) -> str:
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                raise self.error(key, "missing (required)")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(key, "expected a string")
        return str(value)

    def boolean(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(key, "expected true or false")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.raw.get(key)
        if value is None or value == 0:
            return default  # Thanos' 0 means "the default"
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, "expected a non-negative integer")
        return value

    def mapping(self, key: str) -> _Section:
        value = self.raw.get(key) or {}
        if not isinstance(value, Mapping):
            raise self.error(key, "expected a mapping")
        return _Section(value, f"{self.path}{key}.", self.source)

    def string_map(self, key: str) -> dict[str, str]:
        section = self.mapping(key)
        return {str(name): section.string(name) for name in section.raw}


_HTTP_CONFIG_KEYS = {
    "idle_conn_timeout", "response_header_timeout", "insecure_skip_verify", "tls_handshake_timeout",
    "expect_continue_timeout", "max_idle_conns", "max_idle_conns_per_host", "max_conns_per_host",
    "disable_compression", "tls_config",
}  # fmt: skip
_TLS_CONFIG_KEYS = {"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"}


def _parse_s3(config: _Section) -> S3Config:
    http = config.mapping("http_config")
    http.check_keys(_HTTP_CONFIG_KEYS)
    tls = http.mapping("tls_config")
    tls.check_keys(_TLS_CONFIG_KEYS)
    for unsupported in ("cert_file", "key_file"):
        if tls.string(unsupported):
            raise tls.error(
                unsupported, "TLS client certificates are not supported by kubecost-etl's S3 client"
            )

    lookup = config.string("bucket_lookup_type") or "auto"
    if lookup not in ("auto", "virtual-hosted", "path"):
        raise config.error("bucket_lookup_type", f"{lookup!r} is not one of auto, virtual-hosted, path")
    part_size = config.integer("part_size", DEFAULT_PART_SIZE)
    if part_size < S3_MIN_PART_SIZE:
        raise config.error("part_size", f"must be at least {S3_MIN_PART_SIZE} bytes (5 MiB), S3's minimum")
    if config.boolean("aws_sdk_auth") and config.string("access_key"):
        raise config.error("aws_sdk_auth", "aws_sdk_auth and access_key are mutually exclusive")
    if bool(config.string("access_key")) != bool(config.string("secret_key")):
        raise config.error("access_key", "access_key and secret_key must be given together (or neither)")

    sse = config.mapping("sse_config")
    sse.check_keys({"type", "kms_key_id", "kms_encryption_context", "encryption_key"})
    sse_type = sse.string("type")
    if sse_type == "SSE-C":
        raise sse.error("type", "SSE-C (customer-provided keys) is not supported; use SSE-S3 or SSE-KMS")
    if sse_type not in ("", "SSE-S3", "SSE-KMS"):
        raise sse.error("type", f"{sse_type!r} is not one of SSE-S3, SSE-KMS")
    if sse_type == "SSE-KMS" and not sse.string("kms_key_id"):
        raise sse.error("kms_key_id", "required when type is SSE-KMS")

    return S3Config(
        bucket=config.string("bucket", required=True),
        endpoint=config.string("endpoint"),
        region=config.string("region"),
        access_key=config.string("access_key"),
        secret_key=config.string("secret_key"),
        session_token=config.string("session_token"),
        aws_sdk_auth=config.boolean("aws_sdk_auth"),
        insecure=config.boolean("insecure"),
        signature_version2=config.boolean("signature_version2"),
        bucket_lookup_type=lookup,
        part_size=part_size,
        insecure_skip_verify=http.boolean("insecure_skip_verify") or tls.boolean("insecure_skip_verify"),
        ca_file=tls.string("ca_file"),
        put_user_metadata=config.string_map("put_user_metadata"),
        sse_type=sse_type,
        sse_kms_key_id=sse.string("kms_key_id"),
        sse_kms_encryption_context=sse.string_map("kms_encryption_context"),
    )


def _parse_gcs(config: _Section) -> GCSConfig:
    service_account = config.string("service_account")
    if service_account:
        try:
            key = json.loads(service_account)
        except ValueError:
            raise config.error(
                "service_account", "not valid JSON (expected the key file's JSON text)"
            ) from None
        if not isinstance(key, dict) or key.get("type") != "service_account":
            raise config.error(
                "service_account", 'expected a service account key (JSON with "type": "service_account")'
            )
    part_size = config.integer("chunk_size_bytes", DEFAULT_PART_SIZE)
    if part_size % GCS_CHUNK_ALIGNMENT:
        raise config.error("chunk_size_bytes", f"must be a multiple of {GCS_CHUNK_ALIGNMENT} bytes (256 KiB)")
    return GCSConfig(config.string("bucket", required=True), service_account, part_size)


def _parse_azure(config: _Section) -> AzureConfig:
    connection_string = config.string("storage_connection_string")
    account = config.string("storage_account", required=not connection_string)
    if connection_string and (account or config.string("storage_account_key")):
        raise config.error(
            "storage_connection_string",
            "give either storage_connection_string or storage_account(+key), not both",
        )
    client_auth = [config.string(key) for key in ("az_tenant_id", "client_id", "client_secret")]
    if any(client_auth) and not all(client_auth):
        raise config.error("client_id", "az_tenant_id, client_id and client_secret must be given together")
    return AzureConfig(
        container=config.string("container", required=True),
        storage_account=account,
        storage_account_key=config.string("storage_account_key"),
        storage_connection_string=connection_string,
        endpoint=config.string("endpoint") or AZURE_DEFAULT_ENDPOINT,
        max_retries=config.integer("max_retries", 0),
        user_assigned_id=config.string("user_assigned_id"),
        az_tenant_id=client_auth[0],
        client_id=client_auth[1],
        client_secret=client_auth[2],
    )


def _parse_filesystem(config: _Section) -> FilesystemConfig:
    return FilesystemConfig(config.string("directory", required=True))


# type -> (parser, keys we use, keys Thanos knows that we ignore)
_PARSERS = {
    "S3": (
        _parse_s3,
        {
            "bucket", "endpoint", "region", "access_key", "secret_key", "session_token", "aws_sdk_auth",
            "insecure", "signature_version2", "bucket_lookup_type", "part_size", "http_config",
            "put_user_metadata", "sse_config",
        },
        {
            "trace", "list_objects_version", "sts_endpoint", "disable_dualstack", "send_content_md5",
            "disable_multipart",
        },
    ),
    "GCS": (
        _parse_gcs,
        {"bucket", "service_account", "chunk_size_bytes"},
        {"use_grpc", "grpc_conn_pool_size", "http_config", "max_retries"},
    ),
    "AZURE": (
        _parse_azure,
        {
            "storage_account", "storage_account_key", "storage_connection_string", "container", "endpoint",
            "max_retries", "user_assigned_id", "az_tenant_id", "client_id", "client_secret",
        },
        {"msi_resource", "storage_create_container", "reader_config", "pipeline_config", "http_config"},
    ),
    "FILESYSTEM": (_parse_filesystem, {"directory"}, set()),
}  # fmt: skip
