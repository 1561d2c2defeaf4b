"""``signed_url``: a time-limited GET link that works without credentials where the store can sign one
(S3 presigned, Azure SAS with the account key), and a reason where it cannot (GCS without a key, a
local directory, a client without an account key); ``at_root`` reaches full object keys."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from kubecost_etl.storage.azure import AzureStore
from kubecost_etl.storage.base import SigningUnavailable

from ..stores_under_test import STORE_PREFIX, make_s3


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read()


def test_a_signed_link_downloads_the_object_or_the_store_says_why_not(store):
    store.store.put_bytes("share/bundle.tar.gz", b"bundle bytes")

    if store.kind in ("s3", "azure"):
        link = store.store.signed_url("share/bundle.tar.gz", timedelta(hours=1))
        assert f"{STORE_PREFIX}/share/bundle.tar.gz" in link
        assert fetch(link) == b"bundle bytes"
        with pytest.raises(urllib.error.HTTPError) as tampered:  # the signature covers the key
            fetch(link.replace("bundle.tar.gz", "other.tar.gz"))
        assert tampered.value.code in (403, 404)
    else:
        with pytest.raises(SigningUnavailable) as refused:
            store.store.signed_url("share/bundle.tar.gz", timedelta(hours=1))
        reason = {"gcs": "cannot sign URLs", "filesystem": "a local directory has no download links"}[
            store.kind
        ]
        assert reason in str(refused.value)


def test_s3_refuses_links_longer_than_a_week(moto_s3_server, unique_bucket_name):
    store = make_s3(moto_s3_server, unique_bucket_name).store
    store.put_bytes("k", b"x")
    with pytest.raises(SigningUnavailable, match="7 days"):
        store.signed_url("k", timedelta(days=8))


def test_azure_without_an_account_key_says_so(azurite_server, unique_bucket_name):
    from azure.storage.blob import ContainerClient

    container = ContainerClient(azurite_server.blob_endpoint(), unique_bucket_name)  # anonymous: no key
    with pytest.raises(SigningUnavailable, match="no storage account key"):
        AzureStore(container, "p").signed_url("k", timedelta(hours=1))


def test_at_root_reads_full_object_keys_outside_the_prefix(store):
    store.store.put_bytes("inside", b"in")
    root = store.store.at_root()
    assert root.read_bytes(f"{STORE_PREFIX}/inside") == b"in"
    root.put_bytes("uploads/outside", b"out")
    assert "uploads/outside" in store.raw_names() and store.store.stat("inside").size == 2
    assert root.description + "/" + STORE_PREFIX == store.store.description
