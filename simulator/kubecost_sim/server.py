"""Run the whole simulated cluster in one process: Kubernetes API, cost-model ports, Prometheus.

All listeners share one event loop. Once they all accept connections a kubeconfig is written
and ``ready`` receives the URLs (the CLI prints them as one JSON line on stdout).

The API is served over HTTPS with a CA made at startup (its certificate is embedded in the
kubeconfig and written next to it as ``<kubeconfig>.ca.crt``): kubectl/client-go never send a
bearer token to a plain ``http://`` server (kubernetes/kubectl#744), so token auth and real
kubectl need TLS. ``plain_http`` serves http instead, for clients that do send tokens there
(the Python client, curl). The cost-model and Prometheus ports are plain http, as in the pod.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import logging
import secrets
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .cluster import COST_MODEL_CONTAINER, NAMESPACE, Cluster
from .costmodel import CostModel
from .faults import Faults
from .kubeapi.app import KubeApi
from .prometheus import Prometheus
from .rbac import RoleAuthorizer
from .requestlog import RequestLog
from .windows import parse_duration

log = logging.getLogger(__name__)
_SHUTDOWN_SECONDS = 2.0  # open log follows and execs are cut after this on SIGTERM


@dataclass
class ServeOptions:
    etl_dir: Path
    kubeconfig: Path
    port: int = 0
    host: str = "127.0.0.1"
    costmodel_port: int = 0
    frontend_port: int = 0
    prometheus_port: int = 0
    request_log: Path | None = None
    prometheus_retention: str = "15d"
    prometheus_retention_size: str | None = None  # e.g. "10GiB": reported as "15d or 10GiB"
    hourly_hours: int = 49
    no_tar: bool = False
    token: str | None = None
    work_dir: Path | None = None  # the pods' scratch folders; a temporary folder if None
    plain_http: bool = False
    faults: dict = field(default_factory=dict)
    rbac_role: Path | None = None  # a Role (YAML) every API request is checked against: see rbac.py


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def make_tls(host: str, folder: Path) -> tuple[ssl.SSLContext, bytes]:
    """A throw-away CA and a server certificate for ``host``; returns (server context, CA PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30))

    def certificate(subject: str, key, issuer_name, issuer_key, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubecost-sim-ca")])
    ca = certificate(
        "kubecost-sim-ca",
        ca_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
        ],
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        if ipaddress.ip_address(host) != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate(
        "kube-apiserver",
        server_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName(names), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    pem = serialization.Encoding.PEM
    chain, key = folder / "apiserver.crt", folder / "apiserver.key"
    chain.write_bytes(server.public_bytes(pem))
    key.write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    return context, ca.public_bytes(pem)


def write_kubeconfig(path: Path, server: str, token: str, ca_pem: bytes | None) -> None:
    """A kubeconfig for kubectl and the Python client (JSON is valid YAML)."""
    cluster = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubecost-sim", "cluster": cluster}],
        "users": [{"name": "kubecost-sim", "user": {"token": token}}],
        "contexts": [
            {
                "name": "kubecost-sim",
                "context": {"cluster": "kubecost-sim", "user": "kubecost-sim", "namespace": NAMESPACE},
            }
        ],
        "current-context": "kubecost-sim",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


async def serve(
    options: ServeOptions, ready: Callable[[dict], None], stop: asyncio.Event | None = None
) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    loop = asyncio.get_running_loop()
    authorizer = RoleAuthorizer.from_file(options.rbac_role) if options.rbac_role else None
    faults = Faults()
    faults.update(options.faults)
    request_log = RequestLog(options.request_log)
    own_work_dir = options.work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="kubecost-sim-")) if own_work_dir else options.work_dir
    retention = parse_duration(options.prometheus_retention)
    cluster = Cluster(options.etl_dir, work_dir, cost_model_has_tar=not options.no_tar)
    cluster.bind_loop(loop)
    costmodel = CostModel(
        etl_dir=options.etl_dir,
        faults=faults,
        log=lambda line: cluster.append_log(COST_MODEL_CONTAINER, line),
        restart_pod=cluster.rollout_restart,
        request_log=request_log,
        prometheus_retention_seconds=retention,
        hourly_hours=options.hourly_hours,
    )
    cluster.on_restart(costmodel.on_pod_restart)
    prometheus = Prometheus(
        retention, request_log, faults=faults, retention_size=options.prometheus_retention_size
    )

    sockets = {
        name: _listen(options.host, port)
        for name, port in (
            ("api", options.port),
            ("costmodel", options.costmodel_port),
            ("frontend", options.frontend_port),
            ("prometheus", options.prometheus_port),
        )
    }
    urls = {name: f"http://{options.host}:{sock.getsockname()[1]}" for name, sock in sockets.items()}
    tls, ca_pem, ca_file = None, None, None
    if not options.plain_http:
        tls, ca_pem = make_tls(options.host, work_dir)
        urls["api"] = urls["api"].replace("http://", "https://")
        ca_file = options.kubeconfig.with_name(options.kubeconfig.name + ".ca.crt")
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_bytes(ca_pem)
    token = options.token or secrets.token_urlsafe(24)
    kube = KubeApi(
        cluster,
        faults,
        token,
        {"model": urls["costmodel"], "frontend": urls["frontend"], "prometheus": urls["prometheus"]},
        request_log,
        authorizer,
    )
    apps = {
        "api": kube.app(),
        "costmodel": costmodel.model_app(),
        "frontend": costmodel.frontend_app(),
        "prometheus": prometheus.app(),
    }
    runners = []
    try:
        for name, app in apps.items():
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
            )
            await runner.setup()
            runners.append(runner)
            await web.SockSite(runner, sockets[name], ssl_context=tls if name == "api" else None).start()
        write_kubeconfig(options.kubeconfig, urls["api"], token, ca_pem)
        if stop is None:
            stop = asyncio.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        ready(
            {
                "ready": True,
                "api": urls["api"],
                "costmodel": urls["costmodel"],
                "frontend": urls["frontend"],
                "prometheus": urls["prometheus"],
                "kubeconfig": str(options.kubeconfig),
                "admin": urls["api"] + "/_sim",
                "token": token,
                "ca_cert": str(ca_file) if ca_file else None,
                "namespace": NAMESPACE,
                "cost_model_pod": cluster.cost_model_pod().name,
            }
        )
        await stop.wait()
    finally:
        costmodel.on_pod_restart()  # stop background repairs before their loop goes away
        for runner in reversed(runners):
            await runner.cleanup()
        for sock in sockets.values():
            sock.close()
        if own_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
