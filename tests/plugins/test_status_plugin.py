"""The Kubecost ETL page and JSON API, served by a real API server with SimpleAuthManager."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.filesystem import FilesystemStore

from .conftest import CLUSTER, DEAD, DEAD_BUCKET_SECRET, PASSWORD

ROUTES = ["/kubecost-etl/api/v1/status", "/kubecost-etl/"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_refuses_a_caller_without_a_valid_token(status_server, route):
    code, body = status_server.get(route)
    assert code == 401 and CLUSTER not in body
    code, body = status_server.get(route, token="not-a-jwt")
    assert code == 403 and CLUSTER not in body
    assert status_server.get(route, cookie="forged")[0] == 403


def test_status_shows_clusters_the_backup_runs_snapshot_and_run_links(status_server):
    code, body = status_server.get("/kubecost-etl/api/v1/status", token=status_server.token)
    assert code == 200, body
    report = json.loads(body)
    clusters = {c["cluster_id"]: c for c in report["clusters"]}
    assert list(clusters) == [CLUSTER, DEAD]
    repo = Repository(FilesystemStore(status_server.store), CLUSTER)
    snapshot_id = repo.latest_good()
    manifest = repo.load_manifest(snapshot_id)
    latest = clusters[CLUSTER]["latest_verified"]
    assert latest["id"] == snapshot_id and latest["files"] == len(manifest.files)
    assert latest["bytes"] == manifest.total_bytes and 0 < latest["stored_bytes"]
    backup = clusters[CLUSTER]["runs"]["backup"]
    assert backup["state"] == "success" and backup["url"] == "/dags/kubecost_etl_backup/runs/" + quote(
        backup["run_id"], safe=""
    )
    assert clusters[CLUSTER]["runs"]["restore"] is None
    stores = {s["store"]: s for s in clusters[CLUSTER]["coverage"]}
    assert stores["allocations/1d"]["pod_files"] == 5 and stores["allocations/1d"]["gaps"] == 0
    # The bucket that never answers shows as an error in time, without its credentials.
    assert "no answer" in clusters[DEAD]["error"]
    for secret in (DEAD_BUCKET_SECRET, PASSWORD, status_server.sim.token, "dead-access", "kubeconfig"):
        assert secret not in body


def test_a_file_lost_in_the_pod_shows_as_a_gap(status_server):
    victims = sorted(p for p in status_server.etl.rglob("*") if "/assets/1d/" in p.as_posix())[1:3]
    for victim in victims:
        victim.unlink()
    code, body = status_server.get("/kubecost-etl/api/v1/status", token=status_server.token)
    assert code == 200
    cluster = json.loads(body)["clusters"][0]
    conditions = {c["key"]: c for c in cluster["conditions"]}
    assert conditions["lost_files"]["details"]["paths"] == [f"bingen/assets/1d/{v.name}" for v in victims]
    [assets] = [s for s in cluster["coverage"] if s["store"] == "assets/1d"]
    assert assets["gaps"] == 2 and [s["pod"] for s in assets["slots"] if s["gap"]] == [False, False]
    code, page = status_server.get("/kubecost-etl/", cookie=status_server.token)  # the UI's cookie works too
    assert code == 200 and page.count('class="slot gap"') == 2 and f'data-cluster-id="{CLUSTER}"' in page
    assert 'class="run-link"' in page


def test_the_plugin_adds_a_navigation_link(status_server):
    code, body = status_server.get("/api/v2/plugins", token=status_server.token)
    assert code == 200
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "kubecost_etl"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/kubecost-etl"
    assert plugin["external_views"][0]["href"] == "/kubecost-etl/"
