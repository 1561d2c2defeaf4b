"""One backup in its own process, so the benchmark can read that process's peak RSS."""

from __future__ import annotations

import argparse
import json
import sys
import time

from kubecost_etl.backup.pipeline import back_up
from kubecost_etl.config import BackupSettings, ObjectStoreRef
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import resolve_exec_target
from kubecost_etl.snapshots.repository import Repository
from kubecost_etl.storage.objstore_config.build import build_store
from kubecost_etl.storage.objstore_config.parse import parse_objstore_config


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--objstore", required=True, help="Thanos objstore config as JSON")
    opts = parser.parse_args()
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=opts.kubeconfig))
    store = build_store(parse_objstore_config(json.loads(opts.objstore), source="benchmark"))
    repo = Repository(store, "bench")
    settings = BackupSettings(object_store=ObjectStoreRef(inline={}))
    started = time.perf_counter()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "/var/configs/db/etl"
    )
    manifest, report = back_up(core, target, repo, settings, {})
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                **manifest.stats,
                "ok": report["ok"],
                "stream_seconds": manifest.stats["seconds"],
                "seconds": elapsed,
            }
        )
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
