"""One simulated cluster configured for the share and import pipelines, with a filesystem or S3 store."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kubecost_etl.storage.base import ObjectStore
from kubecost_sim import bingen
from kubecost_sim.testing import SimulatorProcess

from tests.etl_trees import make_etl_dir
from tests.kubecost_etl.stores_under_test import STORE_PREFIX, make_s3
from tests.servers import MOTO_ACCESS_KEY, MOTO_REGION, MOTO_SECRET_KEY

CLUSTER = "cluster-a"
TREE = {"days": 5, "hourly_hours": 8, "file_bytes": 30_000, "seed": 13}


@dataclass
class Env:
    sim: SimulatorProcess
    etl: Path
    store: ObjectStore  # the test's own client of the configured store, under STORE_PREFIX
    root: ObjectStore  # the same bucket without the prefix: full object keys
    tmp: Path

    def repository_objects(self) -> list[str]:
        return [i.key for i in self.store.list("kubecost-etl-backup/")]

    def upload(self, key: str, data: bytes) -> str:
        """An archive an operator uploaded: ``key`` is its full object name in the bucket."""
        self.root.put_bytes(key, data)
        return key


def make_env(
    request,
    tmp_path: Path,
    monkeypatch,
    simulator,
    store_kind: str = "filesystem",
    no_tar: bool = False,
    share: dict | None = None,
    **tree,
) -> Env:
    """``share`` is the cluster's ``share:`` settings, if any."""
    etl = make_etl_dir(tmp_path, **{**TREE, **tree})
    sim = simulator(etl, no_tar=no_tar)
    if store_kind == "s3":
        server = request.getfixturevalue("moto_s3_server")
        bucket = request.getfixturevalue("unique_bucket_name")
        own = make_s3(server, bucket).store
        object_store = {
            "type": "S3",
            "prefix": STORE_PREFIX,
            "config": {
                "bucket": bucket,
                "endpoint": server.url,
                "region": MOTO_REGION,
                "access_key": MOTO_ACCESS_KEY,
                "secret_key": MOTO_SECRET_KEY,
            },
        }
    else:
        own = request.getfixturevalue("fs_store")
        object_store = {"type": "FILESYSTEM", "prefix": STORE_PREFIX, "config": {"directory": str(own.root)}}
    config = tmp_path / "kubecost-etl.yaml"
    cluster = {"id": CLUSTER, "kubeconfig": str(sim.kubeconfig), "backup": {"object_store": object_store}}
    if share:
        cluster["share"] = share
    config.write_text(json.dumps({"clusters": [cluster]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))
    return Env(sim, etl, own, own.at_root(), tmp_path)


def add_set_file(etl: Path, relative: str, start: int, end: int, mtime: int | None = None) -> Path:
    path = etl / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bingen.encode_empty_set(relative.split("/")[1], start, end))
    if mtime is not None:
        import os

        os.utime(path, (mtime, mtime))
    return path


def unpack(data: bytes, into: Path) -> Path:
    """The bundle unpacked with the system's tar, in a fresh directory."""
    into.mkdir(parents=True)
    (into.parent / f"{into.name}.tar.gz").write_bytes(data)
    subprocess.run(["tar", "xzf", str(into.parent / f"{into.name}.tar.gz"), "-C", str(into)], check=True)
    return into


def download_etl_archive(etl: Path, workdir: Path) -> bytes:
    """Exactly what Kubecost's download-etl.sh does after its kubectl cp:
    ``tar cfz kubecost-etl.tar.gz kc-etl-tmp``.
    """
    workdir.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(etl), str(workdir / "kc-etl-tmp")], check=True)
    subprocess.run(["tar", "cfz", "kubecost-etl.tar.gz", "kc-etl-tmp"], cwd=workdir, check=True)
    return (workdir / "kubecost-etl.tar.gz").read_bytes()


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A gzip tarball of hand-made members (hostile ones included)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **fields
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
