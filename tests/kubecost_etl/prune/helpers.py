"""Shared by the prune tests: backups of a changing ETL tree, and independent reads of what is stored."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import zstandard
from kubecost_etl.backup.pipeline import back_up
from kubecost_etl.config import BackupSettings, ObjectStoreRef
from kubecost_etl.kube.pods import find_cost_model_pod
from kubecost_etl.kube.target import resolve_exec_target
from kubecost_etl.snapshots.repository import Repository

from tests.etl_trees import tree_digests

CLUSTER = "cluster-a"
ROOT = f"kubecost-etl-backup/{CLUSTER}/"


def settings() -> BackupSettings:
    return BackupSettings(object_store=ObjectStoreRef(inline={}))


def back_up_now(sim, repo: Repository) -> tuple[str, dict[str, str]]:
    """One verified backup; its snapshot id and the tree it saw (sha256 by path)."""
    core = sim.core_v1()
    target = resolve_exec_target(
        core, find_cost_model_pod(core, "kubecost", "app=cost-analyzer"), "/var/configs/db/etl"
    )
    before = tree_digests(sim.etl_dir)
    manifest, report = back_up(core, target, repo, settings(), {"pod": target.pod.name}, full_verify=True)
    assert report["ok"], report
    return manifest.snapshot_id, before


def change_tree(etl: Path, step: int) -> None:
    """Change one file's body (header intact), delete one, add one: new objects for the next backup.

    The same file changes every time, so each snapshot holds one version no other snapshot has
    (snapshots made within one second sort by their random suffix, not by the order they were made).
    """
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    victim = files[0]
    victim.write_bytes(victim.read_bytes()[:-12] + f"changed{step:05d}".encode())
    os.utime(victim, (victim.stat().st_atime, victim.stat().st_mtime + 60 * (step + 1)))
    files[-1 - step % (len(files) // 2)].unlink()
    extra = etl / "bingen" / "assets" / "1w" / f"extra-{step}"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_bytes(b"BGST" + b"\0" * 4 + b"\x15" + f"extra {step}".encode())


def stored_tree(store, snapshot_id: str) -> dict[str, str]:
    """A snapshot read straight from the store and decompressed with the libraries themselves."""
    manifest = json.loads(store.read_bytes(f"{ROOT}snapshots/{snapshot_id}/manifest.json"))
    out = {}
    for entry in manifest["files"]:
        raw = store.read_bytes(ROOT + entry["object"])
        data = (
            zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            if entry["compression"] == "zstd"
            else gzip.decompress(raw)
        )
        out[entry["path"]] = hashlib.sha256(data).hexdigest()
    return out


def manifest_objects(store, snapshot_ids) -> set[str]:
    """Object keys (store-relative) every given manifest names, read from the raw JSON."""
    keys = set()
    for snapshot_id in snapshot_ids:
        manifest = json.loads(store.read_bytes(f"{ROOT}snapshots/{snapshot_id}/manifest.json"))
        keys |= {ROOT + entry["object"] for entry in manifest["files"]}
    return keys
