"""The commands an exec runs in a simulated container, and the small ``sh`` that glues them.

A direct exec (``kubectl exec pod -- tar cf - ...``) runs one tool, or fails like the container
runtime does when the image has no such executable. ``sh -c 'script'`` supports what scripts
around ``kubectl exec``/``kubectl cp`` use: quoting, ``$VAR``/``${VAR:-x}``/``$?``/``$(...)``,
assignments, globbing, ``;``/newlines, ``&&``, ``||``, ``!``, pipes (one thread per stage,
connected by OS pipes, so large streams flow with bounded memory), redirections (``>``, ``>>``,
``<``, ``2>``, ``2>&1``, ``>&2``, ``/dev/null``) and the builtins ``exit cd set export unset :
command``. Compound commands (``if``, ``for``, ``while``, ``case``, subshells, background jobs)
are refused with exit 2 and a clear message rather than half-simulated.

Tools read bytes from ``proc.stdin`` and write bytes to ``proc.stdout``/``proc.stderr``, reach
files only through ``proc.fs`` (see :mod:`kubecost_sim.podfs`) and return their exit code.

The processes and the toolbox are here; the shell is the :mod:`kubecost_sim.shell` package.
"""

from __future__ import annotations

import fcntl
import io
import os
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .podfs import ContainerFS, normalize

BIN_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
_PIPE_BYTES = 1 << 20  # larger OS pipes between pipeline stages: fewer thread wake-ups per MB
_CHUNK = 1 << 16


class ExecutableNotFound(Exception):
    """A direct exec of a program the image does not have (the runtime fails before it starts)."""

    def __init__(self, program: str):
        super().__init__(program)
        self.program = program


class Stop(Exception):
    """A tool gives up with a message (already printed) and an exit code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# ---------------------------------------------------------------------------------- streams
#
# A reader has ``read(size=-1)``: up to ``size`` bytes, b"" at EOF, everything up to EOF when
# ``size`` is negative (as a file's). A writer has ``write(data)`` and ``flush()``.


def read_all(reader) -> bytes:
    """Everything up to EOF, read in chunks: ``read(-1)`` for readers that hand out chunks."""
    buffer = io.BytesIO()
    while chunk := reader.read(_CHUNK):
        buffer.write(chunk)
    return buffer.getvalue()


def copy_stream(source, target) -> None:
    """Copy ``source`` to ``target`` until EOF, one chunk in memory at a time."""
    while chunk := source.read(_CHUNK):
        target.write(chunk)


class NullReader:
    def read(self, size: int = -1) -> bytes:
        return b""


class NullWriter:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class CaptureWriter:
    """Collects output in memory: only for ``$(...)``, whose output is meant to be small."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


class PipeWriter:
    """Write end of an OS pipe; a closed reader raises BrokenPipeError (the tool's SIGPIPE)."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


class PipeReader:
    def __init__(self, fd: int):
        self.fd = fd

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return read_all(self)
        return os.read(self.fd, size)

    def close(self) -> None:
        os.close(self.fd)


def os_pipe() -> tuple[PipeReader, PipeWriter]:
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError:  # not allowed to grow: the default size only costs speed
        pass
    return PipeReader(read_fd), PipeWriter(write_fd)


# ------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Toolbox:
    """Which programs an image has. ``busybox`` selects busybox behaviour where it differs
    from GNU in ways scripts trip over (``find`` has no ``-printf``)."""

    commands: frozenset[str]
    busybox: bool = False

    def without(self, *names: str) -> Toolbox:
        return replace(self, commands=self.commands - set(names))


@dataclass
class Proc:
    """One running program: its container's files and tools, working directory and streams."""

    fs: ContainerFS
    toolbox: Toolbox
    stdin: object
    stdout: object
    stderr: object
    cwd: str = "/"
    cancelled: threading.Event = field(default_factory=threading.Event)

    def path(self, arg: str) -> str:
        return normalize(arg, self.cwd)

    def host(self, arg: str, follow_symlinks: bool = True):
        return self.fs.host_path(arg, follow_symlinks, cwd=self.cwd)

    def out(self, text: str) -> None:
        self.stdout.write(text.encode("utf-8", "surrogateescape"))

    def err(self, text: str) -> None:
        self.stderr.write((text + "\n").encode("utf-8", "surrogateescape"))

    def run(self, argv: list[str]) -> int:
        """Run a program with these streams (an exec, ``find -exec``); ExecutableNotFound if there is none."""
        tool = lookup_tool(self.toolbox, argv[0])
        if tool is None:
            raise ExecutableNotFound(argv[0])
        return call_tool(tool, self, argv)


Tool = Callable[[Proc, list[str]], int]


def _tools() -> dict[str, Tool]:
    from . import coreutils, tartool  # imported late: both modules import this one
    from .shell.run import run_sh

    return {**coreutils.TOOLS, **tartool.TOOLS, "sh": run_sh}


def all_commands() -> frozenset[str]:
    return frozenset(_tools())


def gnu_toolbox(with_tar: bool = True) -> Toolbox:
    """A Debian-like image (GNU tar, find with -printf); ``with_tar=False`` is the current
    Kubecost cost-model image, which has no tar but keeps sh and the other basic tools."""
    box = Toolbox(all_commands())
    return box if with_tar else box.without("tar")


def busybox_toolbox() -> Toolbox:
    """A busybox image, as used for ephemeral debug containers."""
    return Toolbox(all_commands(), busybox=True)


def lookup_tool(toolbox: Toolbox, program: str) -> Tool | None:
    directory, name = posixpath.split(program)
    if directory and directory.rstrip("/") not in BIN_DIRS:
        return None
    if name not in toolbox.commands:
        return None
    return _tools().get(name)


def call_tool(tool: Tool, proc: Proc, argv: list[str]) -> int:
    try:
        return tool(proc, argv[1:])
    except Stop as stop:
        return stop.code
    except BrokenPipeError:
        return 141  # killed by SIGPIPE: the reader went away (or the exec client disconnected)
    except OSError as error:  # a path the tool did not expect to fail (e.g. refused as an escape)
        proc.err(f"{posixpath.basename(argv[0])}: {error.filename or ''}: {error.strerror}")
        return 1
    finally:
        try:
            proc.stdout.flush()
        except BrokenPipeError:
            pass


def run_exec(
    argv: list[str],
    fs: ContainerFS,
    toolbox: Toolbox,
    stdin,
    stdout,
    stderr,
    cancelled: threading.Event | None = None,
) -> int:
    """Run ``argv`` as a container runtime would for an exec; raise ExecutableNotFound if missing."""
    return Proc(fs, toolbox, stdin, stdout, stderr, cancelled=cancelled or threading.Event()).run(argv)
