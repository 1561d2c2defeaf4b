"""The "Kubecost ETL" status page and JSON API, served by the Airflow API server (see kubecost_etl_plugin.py).

Every route requires a logged-in user allowed to read the project's DAGs and their runs (the API
server's own security dependencies: a JWT as ``Authorization: Bearer`` or the UI's ``_token``
cookie): 401 without one, 403 with a bad one or without access. Nothing secret is shown: cluster
ids, snapshot ids, counts, sizes, times, run states, and error texts of the storage and kube layers
(which never carry credentials); no connection, kubeconfig or store configuration.

Per cluster the inspection (``kubecost_etl.airflow.stages.health.inspect_cluster``) runs in a
small bounded thread pool with a timeout, and its result is cached for ``CACHE_SECONDS``: a dead
bucket or API server shows as an error on the page instead of hanging it.
"""

from __future__ import annotations

import html
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

CACHE_SECONDS = float(os.environ.get("KUBECOST_ETL_STATUS_CACHE_SECONDS", "30"))
CLUSTER_TIMEOUT_SECONDS = float(os.environ.get("KUBECOST_ETL_STATUS_TIMEOUT_SECONDS", "20"))
PIPELINES = ("backup", "repair", "restore", "federate", "prune", "health")
PROJECT_DAGS = tuple(f"kubecost_etl_{p}" for p in PIPELINES)
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubecost-etl-status")
_cache: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


def _access():
    """Read access to every project DAG and its runs (DAGs not deployed yet are checked by id too)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    deps = []
    for dag_id in PROJECT_DAGS[:3]:  # backup, repair, restore exist in every deployment of this project
        deps.append(Depends(requires_access_dag("GET", param_dag_id=dag_id)))
        deps.append(Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id)))
    return deps


app = FastAPI(
    title="Kubecost ETL status", dependencies=_access(), docs_url=None, redoc_url=None, openapi_url=None
)


# --- gathering --------------------------------------------------------------------------------------


def _run_link(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _run_names_cluster(dag_id: str, conf: dict, cluster_id: str, single: bool) -> bool:
    conf = conf or {}
    if dag_id in (
        "kubecost_etl_backup",
        "kubecost_etl_health",
        "kubecost_etl_prune",
        "kubecost_etl_federate",
    ):
        clusters = conf.get("clusters") or []
        if conf.get("cluster"):
            return conf["cluster"] == cluster_id
        return not clusters or cluster_id in clusters
    named = conf.get("cluster")
    return named == cluster_id or (not named and single)


def latest_runs(cluster_ids: list[str], per_dag: int = 200) -> dict[str, dict[str, dict | None]]:
    """Per cluster, the newest run of each project DAG that concerns it (read from the metadata DB)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    result = {cid: {p: None for p in PIPELINES} for cid in cluster_ids}
    with create_session() as session:
        for pipeline, dag_id in zip(PIPELINES, PROJECT_DAGS, strict=True):
            runs = session.scalars(
                select(DagRun)
                .where(DagRun.dag_id == dag_id)
                .order_by(DagRun.run_after.desc(), DagRun.id.desc())
                .limit(per_dag)
            ).all()
            for run in runs:
                for cid in cluster_ids:
                    if result[cid][pipeline] is None and _run_names_cluster(
                        dag_id, run.conf, cid, len(cluster_ids) == 1
                    ):
                        result[cid][pipeline] = {
                            "dag_id": dag_id,
                            "run_id": run.run_id,
                            "state": str(run.state),
                            "run_after": run.run_after.isoformat() if run.run_after else None,
                            "url": _run_link(dag_id, run.run_id),
                        }
    return result


def _inspect(cluster, settings) -> dict:
    from kubecost_etl.airflow.stages.health import inspect_cluster

    return inspect_cluster(cluster, settings, with_map=True)


def _cached(cluster_id: str) -> dict | None:
    with _lock:
        cached = _cache.get(cluster_id)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    return None


def clusters_status(clusters, settings) -> list[dict]:
    """Every cluster inspected at once (bounded pool); none waits longer than ``CLUSTER_TIMEOUT_SECONDS``."""
    reports: dict[str, dict] = {}
    futures = {}
    for cluster in clusters:
        cached = _cached(cluster.id)
        if cached is not None:
            reports[cluster.id] = cached
        else:
            futures[cluster.id] = _POOL.submit(_inspect, cluster, settings)
    deadline = time.monotonic() + CLUSTER_TIMEOUT_SECONDS
    for cluster_id, future in futures.items():
        try:
            report = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            report = {
                "cluster_id": cluster_id,
                "error": "no answer from the object store or the cluster within "
                f"{CLUSTER_TIMEOUT_SECONDS:.0f}s",
            }
        except Exception as exc:  # noqa: BLE001 - shown on the page, not raised
            report = {"cluster_id": cluster_id, "error": f"{type(exc).__name__}: {exc}"[:500]}
        with _lock:
            _cache[cluster_id] = (time.monotonic(), report)
        reports[cluster_id] = report
    return [reports[c.id] for c in clusters]


def status() -> dict:
    from kubecost_etl.config import load_config
    from kubecost_etl.errors import KubecostEtlError

    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        config = load_config()
    except KubecostEtlError as exc:
        return {"generated_at": generated, "config_error": str(exc), "clusters": []}
    ids = config.cluster_ids()
    try:
        runs = latest_runs(ids)
    except Exception as exc:  # noqa: BLE001
        runs = {cid: {"error": f"{type(exc).__name__}: {exc}"[:300]} for cid in ids}
    clusters = [
        {**report, "runs": runs[report["cluster_id"]]}
        for report in clusters_status(config.clusters, config.health)
    ]
    return {
        "generated_at": generated,
        "config_error": None,
        "max_backup_age_hours": config.health.max_backup_age.total_seconds() / 3600,
        "clusters": clusters,
    }


@app.get("/api/v1/status")
def status_json() -> dict:
    return status()


# --- the page ---------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#1b1f24}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}
td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
.map{display:flex;flex-wrap:wrap;gap:2px;max-width:60em}
.slot,.key{width:11px;height:14px;border-radius:2px;background:#d0d7de;position:relative}
.pod{background:#2da44e}.snap-only{background:#54aeff}.gap{background:#cf222e;outline:1px solid #82071e}
.legend span{display:inline-block;margin-right:1em}
.legend .key{display:inline-block;vertical-align:middle;margin-right:.3em}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _size(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cluster_html(c: dict) -> str:
    cid = _e(c["cluster_id"])
    parts = [f'<section class="cluster" data-cluster-id="{cid}"><h2>Cluster {cid}</h2>']
    if c.get("error"):
        parts.append(f'<p class="bad cluster-error">{_e(c["error"])}</p>')
    conditions = c.get("conditions") or []
    if conditions:
        parts.append(
            '<ul class="conditions">'
            + "".join(
                f'<li class="bad condition" data-key="{_e(x["key"])}">'
                f"<b>{_e(x['key'])}</b>: {_e(x['summary'])}</li>"
                for x in conditions
            )
            + "</ul>"
        )
    elif not c.get("error"):
        parts.append('<p class="ok">healthy</p>')
    snap, failed = c.get("latest_verified"), c.get("last_failed")
    rows = []
    if snap:
        rows.append(
            f'<tr><th>last verified snapshot</th><td class="snapshot-id">{_e(snap["id"])}</td>'
            f"<td>{_e(snap['age_hours'])} h old</td><td>{_e(snap['files'])} files</td>"
            f"<td>{_size(snap['bytes'])}</td><td>{_size(snap['stored_bytes'])} stored</td></tr>"
        )
    elif not c.get("error"):
        rows.append('<tr><th>last verified snapshot</th><td class="bad" colspan="5">none</td></tr>')
    if failed:
        rows.append(
            f'<tr><th>last failed</th><td class="bad">{_e(failed["id"])}</td>'
            f'<td colspan="4">{_e("; ".join(failed.get("problems") or []))}</td></tr>'
        )
    if rows:
        parts.append("<table>" + "".join(rows) + "</table>")
    runs = c.get("runs") or {}
    if "error" in runs:
        parts.append(f'<p class="bad">runs: {_e(runs["error"])}</p>')
    else:
        cells = []
        for pipeline, run in runs.items():
            if run:
                cls = {"success": "ok", "failed": "bad"}.get(run["state"], "warn")
                cells.append(
                    f'<tr><th>{_e(pipeline)}</th><td><a class="run-link" data-dag-id="{_e(run["dag_id"])}" '
                    f'href="{_e(run["url"])}" target="_top">{_e(run["run_id"])}</a></td>'
                    f'<td class="{cls}">{_e(run["state"])}</td><td>{_e(run["run_after"])}</td></tr>'
                )
            else:
                cells.append(f"<tr><th>{_e(pipeline)}</th><td colspan=3>no run</td></tr>")
        parts.append('<table class="runs">' + "".join(cells) + "</table>")
    for store in c.get("coverage") or []:
        if not store["slots"]:
            parts.append(
                f"<p>{_e(store['store'])}: {store['pod_files']} file(s) in the pod, "
                f"{store['snapshot_files']} in the snapshot</p>"
            )
            continue
        slots = []
        for s in store["slots"]:
            cls = "gap" if s["gap"] else "pod" if s["pod"] else "snap-only" if s["snapshot"] else "none"
            title = (
                f"{s['start']}: pod {'yes' if s['pod'] else 'no'}, "
                f"snapshot {'yes' if s['snapshot'] else 'no'}"
            )
            slots.append(
                f'<span class="slot {cls}" data-start="{_e(s["start"])}" title="{_e(title)}"></span>'
            )
        parts.append(
            f"<h3>{_e(store['store'])} <small>pod {store['pod_files']}, snapshot "
            f'{store["snapshot_files"]}, gaps <span class="gap-count">{store["gaps"]}</span></small></h3>'
            f'<div class="map" data-store="{_e(store["store"])}">{"".join(slots)}</div>'
        )
    parts.append("</section>")
    return "".join(parts)


def render(report: dict) -> str:
    body = [
        f"<h1>Kubecost ETL</h1><p>generated {_e(report['generated_at'])} "
        f"(cached up to {CACHE_SECONDS:.0f}s)</p>",
        '<p class="legend"><span><i class="key pod"></i>in the pod</span>'
        '<span><i class="key snap-only"></i>only in the snapshot</span>'
        '<span><i class="key gap"></i>gap (missing in the pod)</span><span><i class="key"></i>in neither'
        "</span></p>",
    ]
    if report.get("config_error"):
        body.append(f'<p class="bad config-error">configuration: {_e(report["config_error"])}</p>')
    body.extend(_cluster_html(c) for c in report["clusters"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Kubecost ETL</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


@app.get("/", response_class=HTMLResponse)
def status_page() -> HTMLResponse:
    return HTMLResponse(render(status()))
