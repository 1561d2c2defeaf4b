"""The parsed object-store config: one frozen dataclass per backend, secrets redacted in every repr."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from kubecost_etl.storage._shared import DEFAULT_PART_SIZE

AZURE_DEFAULT_ENDPOINT = "blob.core.windows.net"
AWS_ENDPOINT = re.compile(r"(^|\.)amazonaws\.com(\.cn)?$")
AWS_REGION_IN_ENDPOINT = re.compile(r"^s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com")


def _secret(default: str = "") -> Any:
    return field(default=default, metadata={"secret": True})


class _RedactedRepr:
    """A dataclass repr that shows `<redacted>` for secret fields that are set."""

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            shown.append(
                f"{f.name}=<redacted>" if f.metadata.get("secret") and value else f"{f.name}={value!r}"
            )
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class S3Config(_RedactedRepr):
    bucket: str
    endpoint: str = ""
    region: str = ""
    access_key: str = ""
    secret_key: str = _secret()
    session_token: str = _secret()
    aws_sdk_auth: bool = False
    insecure: bool = False
    signature_version2: bool = False
    bucket_lookup_type: str = "auto"  # auto, virtual-hosted or path
    part_size: int = DEFAULT_PART_SIZE
    insecure_skip_verify: bool = False
    ca_file: str = ""
    put_user_metadata: dict[str, str] = field(default_factory=dict)
    sse_type: str = ""  # SSE-S3 or SSE-KMS
    sse_kms_key_id: str = ""
    sse_kms_encryption_context: dict[str, str] = field(default_factory=dict)

    @property
    def is_aws(self) -> bool:
        host = self.endpoint.split("://")[-1].split("/")[0].split(":")[0]
        return not self.endpoint or bool(AWS_ENDPOINT.search(host))

    @property
    def endpoint_url(self) -> str | None:
        """None for AWS (boto3 derives the regional endpoint); a URL for S3-compatible servers."""
        if self.is_aws:
            return None
        if "://" in self.endpoint:
            return self.endpoint
        return ("http://" if self.insecure else "https://") + self.endpoint

    @property
    def effective_region(self) -> str:
        if self.region:
            return self.region
        match = AWS_REGION_IN_ENDPOINT.match(self.endpoint)
        return match.group(1) if match else "us-east-1"


@dataclass(frozen=True, repr=False)
class GCSConfig(_RedactedRepr):
    bucket: str
    service_account: str = _secret()  # the key file's JSON text; empty: application default credentials
    part_size: int = DEFAULT_PART_SIZE  # Thanos' chunk_size_bytes


@dataclass(frozen=True, repr=False)
class AzureConfig(_RedactedRepr):
    container: str
    storage_account: str = ""
    storage_account_key: str = _secret()
    storage_connection_string: str = _secret()
    endpoint: str = AZURE_DEFAULT_ENDPOINT  # a host suffix, or (extension) a full account URL with scheme
    max_retries: int = 0  # 0: the SDK's default
    user_assigned_id: str = ""
    az_tenant_id: str = ""
    client_id: str = ""
    client_secret: str = _secret()

    @property
    def account_url(self) -> str:
        if "://" in self.endpoint:
            return self.endpoint.rstrip("/")
        return f"https://{self.storage_account}.{self.endpoint}"


@dataclass(frozen=True, repr=False)
class FilesystemConfig(_RedactedRepr):
    directory: str


BackendConfig = S3Config | GCSConfig | AzureConfig | FilesystemConfig


@dataclass(frozen=True, repr=False)
class ObjStoreConfig(_RedactedRepr):
    type: str  # upper case
    backend: BackendConfig
    prefix: str = ""
    source: str = "<string>"  # where it was read from, for messages
