"""Real object-store servers for tests, each on a free loopback port, plus a fault-injecting proxy.

- `MotoS3Server`: moto's S3 server (`moto_server` from the venv).
- `AzuriteServer`: Azurite's blob service from the project-local npm install
  (`scripts/install-azurite.sh`); accounts use the well-known devstoreaccount1 key.
- `GcsEmulatorServer`: `gcp-storage-emulator` (clients find it through STORAGE_EMULATOR_HOST
  or an explicit api_endpoint).
- `FaultProxy`: an HTTP reverse proxy that answers 500 for the next N requests matching a
  method and a path pattern, and forwards everything else.

Servers run in their own process group and are stopped by killing the group. Start-up waits
for the server's "ready" line with a deadline, never for a fixed time.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
AZURITE_BLOB_BIN = REPO_ROOT / ".local" / "azurite" / "node_modules" / ".bin" / "azurite-blob"

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every installation, not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# moto accepts any credentials; boto3 only needs some.
MOTO_ACCESS_KEY = "testing-access-key"
MOTO_SECRET_KEY = "testing-secret-key"
MOTO_REGION = "us-east-1"

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess(ABC):
    """A server subprocess in its own process group, ready once its output matches `ready_pattern`."""

    name = "server"
    ready_pattern = ""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.output: deque[str] = deque(maxlen=200)
        self._workdir: str | None = None

    @abstractmethod
    def command(self) -> list[str]: ...

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.port = free_loopback_port()
        self._workdir = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills node/python children too
        )
        ready = threading.Event()
        # The reader keeps draining output after start-up so a chatty server never blocks on a full pipe.
        threading.Thread(
            target=self._read_output, args=(ready,), daemon=True, name=f"{self.name}-output"
        ).start()
        if not ready.wait(STARTUP_TIMEOUT_SECONDS) or self.process.poll() is not None:
            self.stop()
            tail = "\n".join(list(self.output)[-20:])
            raise RuntimeError(f"{self.name} did not become ready on port {self.port}:\n{tail}")
        # The ready line can precede accept(); a blocking connect with a timeout settles it.
        socket.create_connection(("127.0.0.1", self.port), timeout=STARTUP_TIMEOUT_SECONDS).close()
        return self

    def _read_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        pattern = re.compile(self.ready_pattern)
        for raw_line in self.process.stdout:
            line = raw_line.decode(errors="replace").rstrip()
            self.output.append(line)
            if pattern.search(line):
                ready.set()
        ready.set()  # EOF: the process died; start() reports it instead of waiting out the deadline

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class MotoS3Server(ServerProcess):
    name = "moto-s3"
    ready_pattern = r"Running on http"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def client(self, endpoint_url: str | None = None, **client_options):
        """A boto3 S3 client for this server (or for a proxy in front of it)."""
        from kubecost_etl.storage.s3 import make_s3_client

        return make_s3_client(
            endpoint_url=endpoint_url or self.url,
            region=MOTO_REGION,
            access_key=MOTO_ACCESS_KEY,
            secret_key=MOTO_SECRET_KEY,
            **client_options,
        )


class AzuriteServer(ServerProcess):
    name = "azurite-blob"
    ready_pattern = r"successfully listens on"

    @staticmethod
    def is_installed() -> bool:
        return AZURITE_BLOB_BIN.exists()

    def command(self) -> list[str]:
        return [
            str(AZURITE_BLOB_BIN),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",  # otherwise it tries to phone home
            "--loose",
        ]  # fmt: skip

    def blob_endpoint(self, base_url: str | None = None) -> str:
        return f"{base_url or self.url}/{AZURITE_ACCOUNT}"

    def connection_string(self, base_url: str | None = None) -> str:
        """The devstoreaccount1 connection string for this server (or for a proxy in front of it)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_endpoint(base_url)};"
        )


class GcsEmulatorServer(ServerProcess):
    name = "gcp-storage-emulator"
    ready_pattern = r"All services started"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "gcp-storage-emulator"), "start",
            "-H", "127.0.0.1", "--port", str(self.port), "--in-memory",
        ]  # fmt: skip

    def client(self, project: str = "test-project"):
        """An anonymous google-cloud-storage client aimed at this emulator without touching the
        environment.
        """
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )


# --- fault injection ---------------------------------------------------------------------

S3_INTERNAL_ERROR = (
    {"Content-Type": "application/xml"},
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>",
)
AZURE_INTERNAL_ERROR = (
    {"Content-Type": "application/xml", "x-ms-error-code": "InternalError"},
    b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code>'
    b"<Message>The server encountered an internal error. Please retry the request.</Message></Error>",
)
INJECTED_STATUS = 500  # what a matching request is answered with (the body says InternalError)
HOP_BY_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


@dataclass
class FaultRule:
    method: str
    path_pattern: re.Pattern[str]
    remaining: int | None  # None: fail forever
    headers: dict[str, str]
    body: bytes


@dataclass
class SeenRequest:
    method: str
    path: str
    status: int
    injected: bool


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of `upstream_url` that can inject HTTP errors.

    `fail_next("PUT", r"partNumber=", times=2, error=S3_INTERNAL_ERROR)` answers 500 with the
    store's error body to the next two matching requests (the request body is read first,
    as a real server would). Every request is recorded in `requests`.
    """

    def __init__(self, upstream_url: str) -> None:
        match = re.fullmatch(r"http://([^:/]+):(\d+)/?", upstream_url)
        if not match:
            raise ValueError(f"FaultProxy needs an http://host:port upstream, got {upstream_url!r}")
        self.upstream = (match.group(1), int(match.group(2)))
        self.rules: list[FaultRule] = []
        self.requests: list[SeenRequest] = []
        # (method, path, upstream body) -> the body sent on: a test may correct what the emulator answers
        self.rewrite_response: Callable[[str, str, bytes], bytes] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.fault_proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="fault-proxy"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        *,
        times: int | None = 1,
        error: tuple[dict[str, str], bytes] = S3_INTERNAL_ERROR,
    ) -> None:
        headers, body = error
        with self._lock:
            self.rules.append(FaultRule(method.upper(), re.compile(path_pattern), times, dict(headers), body))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def injected(self, method: str | None = None) -> list[SeenRequest]:
        return [r for r in self.requests if r.injected and (method is None or r.method == method)]

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path_pattern.search(path) and rule.remaining != 0:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def _record(self, method: str, path: str, status: int, injected: bool) -> None:
        with self._lock:
            self.requests.append(SeenRequest(method, path, status, injected))

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def log_message(self, format: str, *args) -> None:  # quiet: requests are recorded instead
        pass

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.fault_proxy  # type: ignore[attr-defined]
        body = self._read_request_body()
        rule = proxy._take_fault(self.command, self.path)
        if rule is not None:
            self._respond(INJECTED_STATUS, rule.headers, rule.body)
            proxy._record(self.command, self.path, INJECTED_STATUS, injected=True)
            return
        status = self._forward(proxy.upstream, body)
        proxy._record(self.command, self.path, status, injected=False)

    def _read_request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, upstream: tuple[str, int], body: bytes) -> int:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP_HEADERS}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*upstream, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            # Read fully: the response may be chunked upstream; it is re-sent with a Content-Length.
            payload = response.read()
            rewrite = self.server.fault_proxy.rewrite_response  # type: ignore[attr-defined]
            if rewrite is not None and 200 <= response.status < 300:
                payload = rewrite(self.command, self.path, payload)
            response_headers = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP_HEADERS}
            self._respond(response.status, response_headers, payload, declared_length=self.command == "HEAD")
            return response.status
        finally:
            connection.close()

    def _respond(
        self, status: int, headers: dict[str, str], body: bytes, declared_length: bool = False
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length" or declared_length:
                self.send_header(name, value)
        if not declared_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
