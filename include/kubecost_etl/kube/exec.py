"""Exec in a pod over the Kubernetes WebSocket protocol, reading frames ourselves.

The official client sets up the connection (auth, TLS, proxies, v5/v4 negotiation), but its
``update()`` loop buffers every byte it reads (36.x) and decodes text unless asked not to, which
corrupts tar streams. Reading frames directly keeps memory constant and bytes untouched.
Channels: 0 stdin, 1 stdout, 2 stderr, 3 status (JSON), 255 close (v5 only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from websocket import ABNF, WebSocketConnectionClosedException, WebSocketTimeoutException

from kubecost_etl.errors import Refusal, TransientError

STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255
_STDERR_KEPT = 64 * 1024
_STDIN_FRAME = 256 * 1024
# Each argument of an exec'd command travels in the request URL as one `command=` parameter. API
# servers accept long URLs, but proxies in front of them often cap the request line near 8 KiB.
MAX_COMMAND_URL_BYTES = 6 * 1024


class ExecError(TransientError, RuntimeError):
    """The command could not run or failed; ``exit_code`` is set when it ran and exited non-zero."""

    def __init__(self, message: str, exit_code: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


class ExecStreamCut(ExecError):
    """The stream ended without the API server's final status: the output may be incomplete."""


class ExecForbidden(Refusal, RuntimeError):
    """The API server refused the exec (401/403): the credentials or their RBAC Role must change first."""


class CommandNotFound(ExecError):
    """The container has no such executable (e.g. current Kubecost images have no ``tar``)."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stderr: str


class PodExec:
    """One running exec session. Iterate ``stdout()`` to the end, then read ``result``."""

    def __init__(
        self,
        core_api,
        namespace: str,
        pod: str,
        container: str,
        command: list[str],
        stdin: bool = False,
        read_timeout: float = 300.0,
    ):
        from kubernetes.stream import stream  # imported lazily: the client is heavy to import

        self.command = command
        self.description = f"exec {command[0]!r} in {namespace}/{pod}[{container}]"
        try:
            self._client = stream(
                core_api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=command,
                stdin=stdin,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                binary=True,
            )
        except Exception as exc:  # the client reports a refused handshake in several shapes
            why = _handshake_failure(exc)
            error = ExecForbidden if why.startswith(_REFUSED_HANDSHAKES) else ExecError
            raise error(f"{self.description}: cannot start the exec session: {why}") from exc
        self._sock = self._client.sock
        self._sock.settimeout(read_timeout)
        self.protocol = self._client.subprotocol or ""
        self._stderr = bytearray()
        self._status: dict | None = None
        self.result: ExecResult | None = None

    def __enter__(self) -> PodExec:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except Exception:  # closing a broken socket must not mask the original error
            pass

    def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _STDIN_FRAME):
            self._sock.send(b"\x00" + bytes(view[start : start + _STDIN_FRAME]), opcode=ABNF.OPCODE_BINARY)

    def close_stdin(self) -> bool:
        """Signal end of stdin. Only v5.channel.k8s.io can; returns False on v4."""
        if self.protocol != "v5.channel.k8s.io":
            return False
        self._sock.send(bytes([CLOSE, STDIN]), opcode=ABNF.OPCODE_BINARY)
        return True

    def stdout(self) -> Iterator[bytes]:
        """Yield stdout frames as they arrive; raise when the command fails or the stream is cut."""
        while True:
            try:
                opcode, data = self._recv()
            except WebSocketTimeoutException:
                raise ExecStreamCut(f"{self.description}: no data for {self._sock.gettimeout()} s") from None
            if opcode is None:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDOUT:
                if payload:
                    yield payload
            elif channel == STDERR:
                self._stderr += payload
                del self._stderr[:-_STDERR_KEPT]
            elif channel == STATUS:
                self._status = json.loads(payload or b"{}")
        self.result = self._finish()

    def run(self) -> ExecResult:
        """Run to completion, discarding stdout."""
        for _ in self.stdout():
            pass
        assert self.result is not None
        return self.result

    def output(self, limit: int = 64 << 20) -> bytes:
        """Run to completion and return stdout (for small outputs such as listings)."""
        out = bytearray()
        for chunk in self.stdout():
            out += chunk
            if len(out) > limit:
                raise ExecError(f"{self.description}: output larger than {limit} bytes")
        return bytes(out)

    def _recv(self) -> tuple[int | None, bytes]:
        try:
            opcode, frame = self._sock.recv_data_frame(True)
        except (WebSocketConnectionClosedException, ConnectionError):
            return None, b""  # without a status frame first, _finish reports the cut
        if opcode == ABNF.OPCODE_CLOSE:
            return None, b""
        if opcode in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
            return opcode, frame.data
        return opcode, b""  # ping/pong

    def _finish(self) -> ExecResult:
        stderr = self._stderr.decode("utf-8", "replace").strip()
        status = self._status
        if status is None:
            raise ExecStreamCut(
                f"{self.description}: the stream ended without a final status; output may be incomplete"
                + (f" (stderr: {stderr[-500:]})" if stderr else ""),
                stderr=stderr,
            )
        if status.get("status") == "Success":
            return ExecResult(0, stderr)
        exit_code = _exit_code(status)
        message = status.get("message", "")
        if exit_code is None:
            if "executable file not found" in message or "no such file or directory" in message:
                raise CommandNotFound(f"{self.description}: {message}", stderr=stderr)
            raise ExecError(f"{self.description}: {message or status}", stderr=stderr)
        if exit_code == 127:
            raise CommandNotFound(f"{self.description}: command not found ({stderr[-300:]})", 127, stderr)
        raise ExecError(
            f"{self.description} exited with {exit_code}" + (f": {stderr[-1000:]}" if stderr else ""),
            exit_code,
            stderr,
        )


def command_batches(
    base: list[str],
    arguments: list[str],
    max_count: int | None = None,
    max_url_bytes: int = MAX_COMMAND_URL_BYTES,
) -> Iterator[list[str]]:
    """Split ``arguments`` into runs that, appended to ``base``, keep the exec URL within budget."""

    def url_bytes(arg: str) -> int:
        return len("&command=") + len(quote(arg, safe=""))

    budget = max_url_bytes - sum(url_bytes(a) for a in base)
    batch: list[str] = []
    used = 0
    for arg in arguments:
        cost = url_bytes(arg)
        if cost > budget:
            raise ExecError(f"argument too long for one exec request ({cost} bytes): {arg[:80]}...")
        if batch and (used + cost > budget or (max_count and len(batch) >= max_count)):
            yield batch
            batch, used = [], 0
        batch.append(arg)
        used += cost
    if batch:
        yield batch


_REFUSED_HANDSHAKES = ("the API server answered 401", "the API server answered 403")


def _handshake_failure(exc: BaseException) -> str:
    """What the API server said when it refused the exec, e.g. an RBAC 403 and its Status message.

    kubernetes 36.x wraps a refused handshake in ``ApiException(status=0, reason="Handshake status
    403 Forbidden -+-+- {headers} -+-+- {body}")`` and then fails on it with an AttributeError
    (``e.body.decode``), so the server's answer is only in the exception's context."""
    seen = exc
    while seen is not None:
        reason = str(getattr(seen, "reason", "") or "")
        if reason.startswith("Handshake status"):
            status_line, _, rest = reason.partition(" -+-+- ")
            body = rest.rpartition(" -+-+- ")[2]
            try:
                message = json.loads(body).get("message") or body
            except (ValueError, AttributeError):
                message = body
            return f"the API server answered {status_line.removeprefix('Handshake status ')}: {message}"
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _exit_code(status: dict) -> int | None:
    if status.get("reason") != "NonZeroExitCode":
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None
