"""Secrets are removed from texts that may reach a log, an exception or an alert; the rest stays readable."""

from __future__ import annotations

import pytest
from kubecost_etl.redact import REDACTED, describe_yaml_error, redact, register_secrets


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("config: {bucket: b, secret_key: Zq8TkXr2Wv9LmN4pS7dE}", "Zq8TkXr2Wv9LmN4pS7dE"),
        ('  secret_key: "Zq8TkXr2 Wv9LmN4pS7dE"', "Zq8TkXr2 Wv9LmN4pS7dE"),
        ("access_key: AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("found AKIAIOSFODNN7EXAMPLE in the text", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "Invalid header value b'Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl\\n'",
            "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
        ),
        ("Authorization: Bearer tok-6Hn2Ke9QwR4tY7uI", "tok-6Hn2Ke9QwR4tY7uI"),
        ("https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=AbC%2Fdef%3D&se=2026", "AbC%2Fdef%3D"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFyYmF6==;EndpointSuffix=x",
            "Zm9vYmFyYmF6==",
        ),
        ("storage_account_key: Zm9vYmFyYmF6", "Zm9vYmFyYmF6"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIEpAIBAAKCAQEA",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq (cut off", "MIIEvQIBADANBgkq"),
        ('{"password": "hunter22", "login": "bob"}', "hunter22"),
        ("{'token': 'xoxb-1234-5678-abcdefgh'}", "xoxb-1234-5678-abcdefgh"),
        ("posting with xoxb-1234-5678-abcdefgh failed", "xoxb-1234-5678-abcdefgh"),
        ("GET https://admin:hunter22@kubecost/model", "hunter22"),
        ("client_secret=s3cr3tValue&grant_type=x", "s3cr3tValue"),
    ],
)
def test_secrets_are_redacted(text, secret):
    redacted = redact(text)
    assert secret not in redacted and REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "cluster 'prod-east': backup.compression: 'lz4' is not one of zstd, gzip",
        "config.access_key: access_key and secret_key must be given together (or neither)",
        "the value of header 'Authorization' holds a line break (value not shown)",
        "config.secret_key: expected a string",
        "window '7d': Kubecost rebuilds 7 whole day(s)",
        "snapshot 20260101T000000Z-ab12 verified: 40 objects present, 16 re-hashed",
    ],
)
def test_messages_without_secrets_are_left_alone(text):
    assert redact(text) == text


def test_registered_values_are_redacted_whatever_their_shape():
    register_secrets(["Bearer plain-Registered-Value-77"])
    assert redact("x plain-Registered-Value-77 y") == f"x {REDACTED} y"


def test_yaml_errors_are_described_without_the_line():
    import yaml

    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load('a: 1\nsecret_key: "Zq8TkXr2Wv9LmN4pS7dE" oops\n')
    assert "Zq8TkXr2Wv9LmN4pS7dE" in str(raised.value)
    described = describe_yaml_error(raised.value)
    assert described.startswith("line 2, column ") and "Zq8TkXr2Wv9LmN4pS7dE" not in described
