"""One exec over the Kubernetes WebSocket channel protocol (``v5``/``v4.channel.k8s.io``).

Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final
Status (JSON), 4 terminal resize; v5 adds 255, a close signal (``[255, 0]`` ends stdin).

The command runs in a worker thread (the tools are blocking code); its output is handed to the
event loop through small per-channel buffers with backpressure, so a 200 MB ``tar cf -`` flows
with bounded memory: the worker blocks while its buffer is full, the loop sends frames of at
most 32 KiB and awaits the socket's drain. stdin flows the other way through a bounded queue.
The ``exec_cut_stdin_after_bytes`` fault drops the connection after that many stdin bytes.
The ``exec_cut_after_bytes`` fault closes the connection after that many stdout bytes without
a status frame, as a broken connection or proxy timeout would. The ``exec_lose_status_pattern``
fault lets a matching command run to its end, then drops the connection instead of sending the
status: the command's effect happened, the client cannot know it. ``exec_fail_pattern`` makes a
matching command exit 1 with a given stderr without running. When the pod goes away (rollout
restart, delete) the command is killed and the exec ends with exit code 137, as with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import secrets
import threading

from aiohttp import WSMsgType, web

from .cluster import Container
from .execshell import ExecutableNotFound, NullReader, NullWriter, read_all, run_exec
from .faults import Faults

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
KILLED = 137  # 128 + SIGKILL: what an exec reports when its container is stopped
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
FRAME_BYTES = 32 * 1024
_BUFFERED_BYTES = 4 * FRAME_BYTES  # per output channel: the worker waits beyond this
_STDIN_FRAMES = 16  # stdin frames queued for the worker before we stop reading the socket
log = logging.getLogger(__name__)


def _compact(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def exit_status(argv: list[str], code: int) -> dict:
    """The error-channel Status the kubelet writes when the command has ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(argv)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def missing_executable_status(program: str) -> dict:
    """What containerd/runc report when the image has no such program (kubectl exits 1)."""
    problem = (
        f"stat {program}: no such file or directory"
        if "/" in program
        else "executable file not found in $PATH"
    )
    cause = (
        f"error executing command in container: failed to exec in container: failed to start exec "
        f'"{secrets.token_hex(32)}": OCI runtime exec failed: exec failed: unable to start container '
        f'process: exec: "{program}": {problem}: unknown'
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }


class _OutputChannel:
    """Bytes written by the worker thread, waiting for the loop to send them."""

    def __init__(self, session: ExecSession, channel: int):
        self.session = session
        self.channel = channel
        self.buffer = bytearray()
        self.condition = threading.Condition()
        self.wake_pending = False

    def write(self, data: bytes) -> int:  # worker thread
        with self.condition:
            while len(self.buffer) >= _BUFFERED_BYTES and not self.session.cancelled.is_set():
                self.condition.wait()
            if self.session.cancelled.is_set():
                raise BrokenPipeError(32, "Broken pipe")
            self.buffer += data
            if not self.wake_pending:
                self.wake_pending = True
                self.session.wake()
        return len(data)

    def flush(self) -> None:
        pass  # the loop sends whatever is buffered as soon as it can

    def take(self, limit: int) -> bytes:  # event loop
        with self.condition:
            chunk = bytes(self.buffer[:limit])
            del self.buffer[:limit]
            if not self.buffer:
                self.wake_pending = False
            self.condition.notify_all()
            return chunk

    def release(self) -> None:
        with self.condition:
            self.condition.notify_all()


class _StdinChannel:
    """stdin frames from the client, read by the worker thread as a blocking stream."""

    def __init__(self, session: ExecSession):
        self.session = session
        self.frames: queue.Queue[bytes | None] = queue.Queue()
        self.slots = asyncio.Semaphore(_STDIN_FRAMES)
        self.pending = b""
        self.ended = False
        self.closed = False

    async def feed(self, data: bytes) -> None:  # event loop
        if self.closed:
            return
        await self.slots.acquire()
        self.frames.put(data)

    def close(self) -> None:  # event loop; idempotent
        if not self.closed:
            self.closed = True
            self.frames.put(None)

    def read(self, size: int = -1) -> bytes:  # worker thread
        if size is None or size < 0:
            return read_all(self)  # to the end of stdin, not just the next frame
        while not self.pending and not self.ended:
            frame = self.frames.get()
            if frame is None:
                self.ended = True
                break
            self.session.loop.call_soon_threadsafe(self.slots.release)
            self.pending = frame
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


class ExecSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        argv: list[str],
        container: Container,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
        faults: Faults,
    ):
        self.request = request
        self.ws = ws
        self.argv = argv
        self.container = container
        self.use_stdin, self.use_stdout, self.use_stderr, self.tty = stdin, stdout, stderr, tty
        self.faults = faults
        self.loop = asyncio.get_running_loop()
        self.cancelled = threading.Event()
        self.outcome: dict | None = None
        self.killed = False
        self._wakeup = asyncio.Event()
        self.stdout = _OutputChannel(self, STDOUT)
        # With a tty there is no separate stderr: the terminal merges it into stdout.
        self.stderr = self.stdout if tty else _OutputChannel(self, STDERR)
        self.stdin = _StdinChannel(self)
        self.cut_after = faults.exec_cut_after_bytes  # armed when the exec starts
        self.cut_stdin_after = faults.exec_cut_stdin_after_bytes if stdin else None

    def wake(self) -> None:  # any thread
        self.loop.call_soon_threadsafe(self._wakeup.set)

    def kill(self) -> None:
        """The container stopped: the command dies (its next write fails), the exec reports 137."""
        self.killed = True
        self._cancel()

    async def run(self) -> None:
        worker = threading.Thread(target=self._work, name=f"exec-{self.argv[0]}", daemon=True)
        worker.start()
        receiver = asyncio.create_task(self._receive())
        try:
            if await self._send_output():
                if self._lose_status():
                    return
                await self.ws.send_bytes(bytes([STATUS]) + _compact(self.outcome))
                await self.ws.close()
        except ConnectionError:
            pass  # the client went away; the worker sees a broken pipe and ends
        finally:
            self._cancel()
            receiver.cancel()

    def _cancel(self) -> None:
        self.cancelled.set()
        self.stdin.close()
        self.stdout.release()
        self.stderr.release()

    def _work(self) -> None:  # worker thread
        stdin = self.stdin if self.use_stdin else NullReader()
        stdout = self.stdout if self.use_stdout else NullWriter()
        stderr = self.stderr if self.use_stderr else NullWriter()
        try:
            if self._fail_now():
                stderr.write(self.faults.exec_fail_stderr.encode() + b"\n")
                code = 1
            else:
                code = run_exec(
                    self.argv,
                    self.container.fs,
                    self.container.toolbox,
                    stdin,
                    stdout,
                    stderr,
                    self.cancelled,
                )
            outcome = exit_status(self.argv, code)
        except ExecutableNotFound as missing:
            outcome = missing_executable_status(missing.program)
        except Exception as error:  # a simulator bug: report it like a runtime failure, keep serving
            log.exception("exec %s failed", self.argv)
            outcome = {
                "metadata": {},
                "status": "Failure",
                "reason": "InternalError",
                "code": 500,
                "message": f"Internal error occurred: kubecost_sim exec failed: {error!r}",
            }
        try:
            self.loop.call_soon_threadsafe(self._finish, outcome)
        except RuntimeError:  # the server is shutting down
            pass

    def _finish(self, outcome: dict) -> None:
        self.outcome = exit_status(self.argv, KILLED) if self.killed else outcome
        self._wakeup.set()

    async def _send_output(self) -> bool:
        """Send output until the command ended and all is sent; False if the stream was cut."""
        sent_stdout = 0
        channels = (self.stdout,) if self.stderr is self.stdout else (self.stdout, self.stderr)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while True:
                moved = False
                for channel in channels:
                    chunk = channel.take(FRAME_BYTES)
                    if not chunk:
                        continue
                    moved = True
                    if channel.channel == STDOUT and self.cut_after is not None:
                        if sent_stdout + len(chunk) >= self.cut_after:
                            await self._cut(chunk[: max(0, self.cut_after - sent_stdout)])
                            return False
                        sent_stdout += len(chunk)
                    if self.ws.closed:
                        raise ConnectionResetError("exec client went away")
                    await self.ws.send_bytes(bytes([channel.channel]) + chunk)
                if not moved:
                    break
            if self.outcome is not None and not any(channel.buffer for channel in channels):
                return True

    async def _cut(self, last_chunk: bytes) -> None:
        """The fault: send up to the limit, then drop the connection without a status frame."""
        if last_chunk:
            await self.ws.send_bytes(bytes([STDOUT]) + last_chunk)
        remaining = self.faults.exec_cut_times - 1
        if remaining <= 0:
            self.faults.update({"exec_cut_after_bytes": None, "exec_cut_times": Faults.exec_cut_times})
        else:
            self.faults.exec_cut_times = remaining
        log.info("exec %s cut after %s stdout bytes (fault)", self.argv, self.cut_after)
        if self.request.transport is not None:
            self.request.transport.close()  # flushes what was sent, then closes: no close frame

    def _fail_now(self) -> bool:  # worker thread; the fault switches are plain attributes
        pattern = self.faults.exec_fail_pattern
        if not pattern or not re.search(pattern, " ".join(self.argv)):
            return False
        remaining = self.faults.exec_fail_times - 1
        if remaining <= 0:
            self.faults.exec_fail_pattern = None
            self.faults.exec_fail_times = Faults.exec_fail_times
        else:
            self.faults.exec_fail_times = remaining
        log.info("exec %s fails without running (fault)", self.argv)
        return True

    def _lose_status(self) -> bool:
        """The fault: the command ran to its end; drop the connection instead of sending its status."""
        faults = self.faults
        if faults.exec_lose_status_pending > 0:
            faults.exec_lose_status_pending -= 1
        else:
            pattern = faults.exec_lose_status_pattern
            if not pattern or not re.search(pattern, " ".join(self.argv)):
                return False
            faults.exec_lose_status_pending = faults.exec_lose_status_following
            remaining = faults.exec_lose_status_times - 1
            if remaining <= 0:
                faults.update(
                    {
                        "exec_lose_status_pattern": None,
                        "exec_lose_status_following": 0,
                        "exec_lose_status_times": Faults.exec_lose_status_times,
                    }
                )
            else:
                faults.exec_lose_status_times = remaining
        log.info("exec %s ran; its status is lost (fault)", self.argv)
        if self.request.transport is not None:
            self.request.transport.close()
        return True

    def _cut_stdin(self) -> None:
        """The fault: the connection drops while the client is still sending stdin (once)."""
        self.faults.update({"exec_cut_stdin_after_bytes": None})
        log.info("exec %s cut after %s stdin bytes (fault)", self.argv, self.cut_stdin_after)
        if self.request.transport is not None:
            self.request.transport.close()

    async def _receive(self) -> None:
        """Client frames: stdin data, the v5 close signal, resizes; a close ends the exec."""
        received_stdin = 0
        async for message in self.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            data = message.data if message.type == WSMsgType.BINARY else message.data.encode("utf-8")
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and self.use_stdin:
                if self.cut_stdin_after is not None and received_stdin + len(payload) >= self.cut_stdin_after:
                    await self.stdin.feed(payload[: max(0, self.cut_stdin_after - received_stdin)])
                    self._cut_stdin()
                    break
                received_stdin += len(payload)
                await self.stdin.feed(payload)
            elif channel == CLOSE and self.ws.ws_protocol == V5 and payload[:1] == bytes([STDIN]):
                self.stdin.close()
        self._cancel()  # the client closed the connection
        self._wakeup.set()
