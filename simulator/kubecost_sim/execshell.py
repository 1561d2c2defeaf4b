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
"""

from __future__ import annotations

import fcntl
import fnmatch
import io
import os
import posixpath
import re
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


def _os_pipe() -> tuple[PipeReader, PipeWriter]:
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


def run_exec(argv: list[str], fs: ContainerFS, toolbox: Toolbox, stdin, stdout, stderr,
             cancelled: threading.Event | None = None) -> int:
    """Run ``argv`` as a container runtime would for an exec; raise ExecutableNotFound if missing."""
    return Proc(fs, toolbox, stdin, stdout, stderr, cancelled=cancelled or threading.Event()).run(argv)


# -------------------------------------------------------------------------------- sh: lexing

class ShellSyntaxError(Exception):
    pass


class ShellExit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


_UNSUPPORTED_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
                      "case", "esac", "function", "select", "{", "}"}
_OPERATORS = ("&&", "||", ">>", ">&", "<&", ";;", "|", ";", "&", ">", "<", "(", ")")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


@dataclass
class Word:
    # Each part: (kind, value, quoted); kind is "text", "param" (a ${...} body) or "subst" ($(...) body).
    parts: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, kind: str, value: str, quoted: bool) -> None:
        """Append a part, joining runs of plain text (so ``NAME=`` is seen as one piece)."""
        if kind == "text" and self.parts and self.parts[-1][0] == "text" and self.parts[-1][2] == quoted:
            self.parts[-1] = ("text", self.parts[-1][1] + value, quoted)
        else:
            self.parts.append((kind, value, quoted))

    def literal(self) -> str | None:
        """The plain text of a word without expansions, or None."""
        if any(kind != "text" for kind, _, _ in self.parts):
            return None
        return "".join(value for _, value, _ in self.parts)

    def is_unquoted(self) -> bool:
        return all(not quoted for _, _, quoted in self.parts)


@dataclass
class Token:
    kind: str  # "word", "op", "io" (a redirection's fd number)
    value: object


def _find_closing_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing a ``$(`` whose body starts at ``start``."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                break
            i = end + 1
            continue
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError("unterminated $(")


def _read_dollar(text: str, i: int, quoted: bool) -> tuple[tuple[str, str, bool], int]:
    """Parse the expansion starting at ``text[i] == '$'``; return (part, next index)."""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt == "(":
        if text.startswith("((", i + 1):
            raise ShellSyntaxError("arithmetic $((...)) is not supported")
        end = _find_closing_paren(text, i + 2)
        return ("subst", text[i + 2:end], quoted), end + 1
    if nxt == "{":
        end = text.find("}", i + 2)
        if end < 0:
            raise ShellSyntaxError("missing }")
        return ("param", text[i + 2:end], quoted), end + 1
    if nxt and nxt in "?$#@*0123456789":
        return ("param", nxt, quoted), i + 2
    match = _NAME.match(text, i + 1)
    if match:
        return ("param", match.group(), quoted), match.end()
    return ("text", "$", quoted), i + 1


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    word: Word | None = None
    i = 0

    def finish_word():
        nonlocal word
        if word is not None:
            tokens.append(Token("word", word))
            word = None

    while i < len(text):
        char = text[i]
        if char in " \t":
            finish_word()
            i += 1
        elif char == "\n":
            finish_word()
            tokens.append(Token("op", ";"))
            i += 1
        elif char == "#" and word is None:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char == "\\":
            if i + 1 < len(text) and text[i + 1] == "\n":  # line continuation
                i += 2
                continue
            word = word or Word()
            word.add("text", text[i + 1:i + 2], True)
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word = word or Word()
            word.add("text", text[i + 1:end], True)
            i = end + 1
        elif char == '"':
            word = word or Word()
            word.add("text", "", True)  # so that "" alone is still an (empty) argument
            i += 1
            while True:
                if i >= len(text):
                    raise ShellSyntaxError("unterminated quoted string")
                char = text[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        word.add("text", text[i + 1], True)
                    i += 2
                elif char == "$":
                    part, i = _read_dollar(text, i, True)
                    word.add(*part)
                elif char == "`":
                    raise ShellSyntaxError("backquote command substitution is not supported; use $(...)")
                else:
                    word.add("text", char, True)
                    i += 1
        elif char == "$":
            word = word or Word()
            part, i = _read_dollar(text, i, False)
            word.add(*part)
        elif char == "`":
            raise ShellSyntaxError("backquote command substitution is not supported; use $(...)")
        else:
            operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if operator is None:
                word = word or Word()
                word.add("text", char, False)
                i += 1
                continue
            if operator[0] in "<>" and word is not None and word.is_unquoted() and (
                    (word.literal() or "").isdigit()):
                tokens.append(Token("io", int(word.literal())))  # "2>" : fd number, not a word
                word = None
            else:
                finish_word()
            tokens.append(Token("op", operator))
            i += len(operator)
    finish_word()
    return tokens


# ------------------------------------------------------------------------------- sh: parsing

@dataclass
class Redirect:
    fd: int
    op: str  # ">", ">>", "<", ">&", "<&"
    target: Word


@dataclass
class SimpleCommand:
    assignments: list[tuple[str, Word]]
    words: list[Word]
    redirects: list[Redirect]


@dataclass
class Pipeline:
    commands: list[SimpleCommand]
    negated: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


def parse(text: str) -> list[AndOr]:
    tokens = tokenize(text)
    position = 0

    def peek() -> Token | None:
        return tokens[position] if position < len(tokens) else None

    def is_op(token: Token | None, *values: str) -> bool:
        return token is not None and token.kind == "op" and token.value in values

    def take() -> Token:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def parse_command() -> SimpleCommand:
        assignments, words, redirects = [], [], []
        while True:
            token = peek()
            if token is None or (token.kind == "op" and token.value in ("&&", "||", "|", ";")):
                break
            if is_op(token, "&"):
                raise ShellSyntaxError("background jobs (&) are not supported")
            if is_op(token, "(", ")", ";;"):
                raise ShellSyntaxError(f"unexpected {token.value!r} (subshells and case are not supported)")
            if token.kind == "io" or is_op(token, ">", ">>", "<", ">&", "<&"):
                fd = take().value if token.kind == "io" else None
                operator = take().value
                target = peek()
                if target is None or target.kind != "word":
                    raise ShellSyntaxError(f"missing target after {operator}")
                take()
                default_fd = 0 if operator in ("<", "<&") else 1
                redirects.append(Redirect(default_fd if fd is None else fd, operator, target.value))
                continue
            word = take().value
            literal = word.literal()
            if not words and word.parts and word.parts[0][0] == "text" and not word.parts[0][2]:
                match = _ASSIGNMENT.match(word.parts[0][1])
                if match:
                    rest = Word([("text", word.parts[0][1][match.end():], False), *word.parts[1:]])
                    assignments.append((match.group(1), rest))
                    continue
            if not words and word.is_unquoted() and literal in _UNSUPPORTED_WORDS:
                raise ShellSyntaxError(f"'{literal}' is not supported by the kubecost_sim shell")
            words.append(word)
        if not (assignments or words or redirects):
            token = peek()
            raise ShellSyntaxError(f"unexpected {token.value if token else 'end of input'!r}")
        return SimpleCommand(assignments, words, redirects)

    def parse_pipeline() -> Pipeline:
        negated = False
        token = peek()
        if token is not None and token.kind == "word" and token.value.is_unquoted() and token.value.literal() == "!":
            take()
            negated = True
        commands = [parse_command()]
        while is_op(peek(), "|"):
            take()
            commands.append(parse_command())
        return Pipeline(commands, negated)

    def parse_and_or() -> AndOr:
        first = parse_pipeline()
        rest = []
        while is_op(peek(), "&&", "||"):
            operator = take().value
            rest.append((operator, parse_pipeline()))
        return AndOr(first, rest)

    program = []
    while True:
        while is_op(peek(), ";"):
            take()
        if peek() is None:
            return program
        program.append(parse_and_or())
        token = peek()
        if token is not None and not is_op(token, ";"):
            raise ShellSyntaxError(f"unexpected {token.value!r}")


# ----------------------------------------------------------------------------- sh: running

class _RedirectError(Exception):
    pass


@dataclass
class _Streams:
    stdin: object
    stdout: object
    stderr: object


class Shell:
    def __init__(self, proc: Proc, positional: list[str] | None = None):
        self.proc = proc
        self.cwd = proc.cwd
        self.vars: dict[str, str] = {"HOME": "/root", "PATH": ":".join(BIN_DIRS), "PWD": proc.cwd}
        self.positional = positional or ["sh"]
        self.last_status = 0
        self.errexit = False
        self.nounset = False
        self.pipefail = False
        self._substitution_status = 0

    def run_script(self, text: str) -> int:
        try:
            program = parse(text)
        except ShellSyntaxError as exc:
            self.proc.err(f"sh: syntax error: {exc}")
            return 2
        try:
            for and_or in program:
                status, checked = self._run_and_or(and_or)
                self.last_status = status
                if self.errexit and status != 0 and checked:
                    return status
        except ShellExit as exc:
            return exc.code
        except ShellSyntaxError as exc:
            self.proc.err(f"sh: {exc}")
            return 2
        return self.last_status

    def _run_and_or(self, and_or: AndOr) -> tuple[int, bool]:
        """Run ``a && b || c``; the flag says whether ``set -e`` applies to the status."""
        status = self._run_pipeline(and_or.first)
        checked = not and_or.first.negated and not and_or.rest
        for operator, pipeline in and_or.rest:
            if (operator == "&&") == (status == 0):
                status = self._run_pipeline(pipeline)
                checked = not pipeline.negated and pipeline is and_or.rest[-1][1]
            else:
                checked = False
            self.last_status = status
        return status, checked

    def _run_pipeline(self, pipeline: Pipeline) -> int:
        streams = _Streams(self.proc.stdin, self.proc.stdout, self.proc.stderr)
        if len(pipeline.commands) == 1:
            status = self._run_simple(pipeline.commands[0], streams)
        else:
            status = self._run_stages(pipeline.commands, streams)
        return (0 if status else 1) if pipeline.negated else status

    def _run_stages(self, commands: list[SimpleCommand], streams: _Streams) -> int:
        """Each stage in its own thread, stdout of one piped into stdin of the next."""
        statuses = [0] * len(commands)
        threads = []
        stage_in = streams.stdin
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            if last:
                reader, stage_out = None, streams.stdout
            else:
                reader, stage_out = _os_pipe()
            stage_streams = _Streams(stage_in, stage_out, streams.stderr)
            subshell = self._subshell()

            def run_stage(index=index, command=command, stage_streams=stage_streams, subshell=subshell):
                try:
                    statuses[index] = subshell._run_simple(command, stage_streams)
                except ShellExit as exc:
                    statuses[index] = exc.code
                except ShellSyntaxError as exc:
                    subshell.proc.err(f"sh: {exc}")
                    statuses[index] = 2
                finally:
                    # Closing our ends is what lets the neighbours see EOF / a broken pipe.
                    if isinstance(stage_streams.stdout, PipeWriter):
                        stage_streams.stdout.close()
                    if isinstance(stage_streams.stdin, PipeReader):
                        stage_streams.stdin.close()

            thread = threading.Thread(target=run_stage, name=f"sh-stage-{index}", daemon=True)
            threads.append(thread)
            stage_in = reader
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.pipefail:
            return next((status for status in reversed(statuses) if status), 0)
        return statuses[-1]

    def _subshell(self) -> Shell:
        child = Shell(replace(self.proc, cwd=self.cwd), list(self.positional))
        child.vars = dict(self.vars)
        child.last_status, child.errexit = self.last_status, self.errexit
        child.nounset, child.pipefail = self.nounset, self.pipefail
        return child

    # -- expansion

    def _param(self, body: str) -> str:
        name, default = body, None
        if ":-" in body:
            name, default = body.split(":-", 1)
        if name == "?":
            value = str(self.last_status)
        elif name == "$":
            value = "1"
        elif name == "#":
            value = str(len(self.positional) - 1)
        elif name in ("@", "*"):
            value = " ".join(self.positional[1:])
        elif name.isdigit():
            index = int(name)
            value = self.positional[index] if index < len(self.positional) else None
        elif _NAME.fullmatch(name):
            value = self.vars.get(name)
        else:
            raise ShellSyntaxError(f"${{{body}}}: bad substitution")
        if not value and default is not None:
            return self._expand_text(default)
        if value is None:
            if self.nounset:
                raise ShellSyntaxError(f"{name}: parameter not set")
            return ""
        return value

    def _expand_text(self, text: str) -> str:
        """Expand a default value (``${X:-$Y}``) as one string."""
        return " ".join(self.expand_words([w.value for w in tokenize(text) if w.kind == "word"]))

    def _substitute(self, script: str) -> str:
        capture = CaptureWriter()
        child = self._subshell()
        child.proc = replace(child.proc, stdin=NullReader(), stdout=capture)
        self._substitution_status = child.run_script(script)
        return capture.data.decode("utf-8", "surrogateescape").rstrip("\n")

    def expand_words(self, words: list[Word]) -> list[str]:
        fields: list[str] = []
        for word in words:
            fields.extend(self._expand_word(word))
        return fields

    def _expand_word(self, word: Word) -> list[str]:
        # A field is a list of (text, quoted) pieces; unquoted expansions split into fields.
        fields: list[list[tuple[str, bool]]] = [[]]
        for kind, value, quoted in word.parts:
            if kind == "text":
                fields[-1].append((value, quoted))
                continue
            result = self._param(value) if kind == "param" else self._substitute(value)
            if quoted:
                fields[-1].append((result, True))
                continue
            pieces = result.split()
            if not pieces:
                continue
            if result[0].isspace() and fields[-1]:
                fields.append([])
            for index, piece in enumerate(pieces):
                if index:
                    fields.append([])
                fields[-1].append((piece, False))
            if result[-1].isspace():
                fields.append([])
        expanded = []
        for pieces in fields:
            if not pieces:
                continue
            expanded.extend(self._glob(pieces))
        return expanded

    def _glob(self, pieces: list[tuple[str, bool]]) -> list[str]:
        text = "".join(value for value, _ in pieces)
        if not any(not quoted and any(c in value for c in "*?[") for value, quoted in pieces):
            return [text]
        pattern = "".join(value if not quoted else re.sub(r"([*?\[])", r"[\1]", value)
                          for value, quoted in pieces)
        matches = self._glob_matches(pattern)
        return matches or [text]

    def _glob_matches(self, pattern: str) -> list[str]:
        absolute = pattern.startswith("/")
        components = [c for c in pattern.split("/") if c]
        candidates = ["/" if absolute else ""]
        for index, component in enumerate(components):
            last = index == len(components) - 1
            next_candidates = []
            for prefix in candidates:
                if not any(c in component for c in "*?["):
                    name = re.sub(r"\[(.)\]", r"\1", component)
                    next_candidates.append(posixpath.join(prefix, name) if prefix else name)
                    continue
                try:
                    names = sorted(os.listdir(self.proc.fs.host_path(prefix or ".", cwd=self.cwd)))
                except OSError:
                    continue
                for name in names:
                    if name.startswith(".") and not component.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, component):
                        next_candidates.append(posixpath.join(prefix, name) if prefix else name)
            candidates = next_candidates
            if not last:
                candidates = [c for c in candidates if self._exists(c, directory=True)]
        return [c for c in candidates if self._exists(c)]

    def _exists(self, path: str, directory: bool = False) -> bool:
        try:
            host = self.proc.fs.host_path(path, follow_symlinks=directory, cwd=self.cwd)
        except OSError:
            return False
        return os.path.isdir(host) if directory else os.path.lexists(host)

    # -- simple commands

    def _run_simple(self, command: SimpleCommand, streams: _Streams) -> int:
        self._substitution_status = 0
        argv = self.expand_words(command.words)
        values = [(name, " ".join(self.expand_words([value])) if value.parts else "")
                  for name, value in command.assignments]
        opened = []
        try:
            try:
                streams = self._redirect(command.redirects, streams, opened)
            except _RedirectError as exc:
                self.proc.err(f"sh: {exc}")
                return 1
            if not argv:
                self.vars.update(values)
                return self._substitution_status  # POSIX: the last $(...)'s status, else 0
            return self._dispatch(argv, streams)
        finally:
            for handle in opened:
                handle.close()

    def _redirect(self, redirects: list[Redirect], streams: _Streams, opened: list) -> _Streams:
        current = {0: streams.stdin, 1: streams.stdout, 2: streams.stderr}
        for redirect in redirects:
            target = " ".join(self.expand_words([redirect.target]))
            if redirect.op in (">&", "<&"):
                if target.isdigit() and int(target) in current:
                    current[redirect.fd] = current[int(target)]
                    continue
                raise ShellSyntaxError(f"{target}: bad file descriptor")
            path = normalize(target, self.cwd)
            if path == "/dev/null":
                current[redirect.fd] = NullReader() if redirect.op == "<" else NullWriter()
                continue
            if path in ("/dev/stdout", "/dev/stderr"):
                current[redirect.fd] = current[1 if path == "/dev/stdout" else 2]
                continue
            try:
                host = self.proc.fs.host_path(path)
                mode = {"<": "rb", ">": "wb", ">>": "ab"}[redirect.op]
                handle = open(host, mode)  # noqa: SIM115 - closed by the caller after the command
            except OSError as exc:
                verb = "open" if redirect.op == "<" else "create"
                raise _RedirectError(f"can't {verb} {target}: {exc.strerror}") from None
            opened.append(handle)
            current[redirect.fd] = handle
        return _Streams(current[0], current[1], current[2])

    def _dispatch(self, argv: list[str], streams: _Streams) -> int:
        name = argv[0]
        proc = replace(self.proc, stdin=streams.stdin, stdout=streams.stdout, stderr=streams.stderr,
                       cwd=self.cwd)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, proc, argv[1:])
        tool = lookup_tool(self.proc.toolbox, name)
        if tool is None:
            proc.err(f"sh: {name}: not found")
            return 127
        return call_tool(tool, proc, argv)


def _builtin_exit(shell: Shell, proc: Proc, args: list[str]) -> int:
    if args and not args[0].lstrip("-").isdigit():
        proc.err(f"sh: exit: Illegal number: {args[0]}")
        raise ShellExit(2)
    raise ShellExit(int(args[0]) & 0xFF if args else shell.last_status)


def _builtin_cd(shell: Shell, proc: Proc, args: list[str]) -> int:
    target = normalize(args[0] if args else shell.vars.get("HOME", "/"), shell.cwd)
    try:
        if not os.path.isdir(proc.fs.host_path(target)):
            raise FileNotFoundError
    except OSError:
        proc.err(f"sh: cd: can't cd to {args[0] if args else target}: No such file or directory")
        return 2
    shell.cwd = target
    shell.vars["PWD"] = target
    return 0


def _builtin_set(shell: Shell, proc: Proc, args: list[str]) -> int:
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in ("-o", "+o"):
            option = args.pop(0) if args else ""
            if option != "pipefail":
                proc.err(f"sh: set: illegal option -o {option}")
                return 2
            shell.pipefail = arg == "-o"
            continue
        if arg[:1] not in "-+" or len(arg) < 2:
            proc.err(f"sh: set: setting positional parameters is not supported: {arg}")
            return 2
        for flag in arg[1:]:
            if flag == "e":
                shell.errexit = arg[0] == "-"
            elif flag == "u":
                shell.nounset = arg[0] == "-"
            elif flag not in "xv":  # tracing: accepted, not printed
                proc.err(f"sh: set: illegal option {arg[0]}{flag}")
                return 2
    return 0


def _builtin_export(shell: Shell, proc: Proc, args: list[str]) -> int:
    for arg in args:
        if "=" in arg:
            name, value = arg.split("=", 1)
            shell.vars[name] = value
    return 0


def _builtin_unset(shell: Shell, proc: Proc, args: list[str]) -> int:
    for name in args:
        shell.vars.pop(name, None)
    return 0


def _builtin_command(shell: Shell, proc: Proc, args: list[str]) -> int:
    if not args or args[0] != "-v":
        if args:
            return shell._dispatch(args, _Streams(proc.stdin, proc.stdout, proc.stderr))
        return 0
    status = 0
    for name in args[1:]:
        if name in _BUILTINS:
            proc.out(name + "\n")
        elif lookup_tool(proc.toolbox, name) is not None:
            proc.out((name if "/" in name else f"/bin/{name}") + "\n")
        else:
            status = 1
    return status


_BUILTINS = {
    "exit": _builtin_exit,
    "cd": _builtin_cd,
    "set": _builtin_set,
    "export": _builtin_export,
    "unset": _builtin_unset,
    ":": lambda shell, proc, args: 0,
    "command": _builtin_command,
}


def run_sh(proc: Proc, args: list[str]) -> int:
    """``sh [-eu] [-o pipefail] -c SCRIPT [NAME [ARGS...]]``, ``sh FILE``, or ``sh`` reading stdin."""
    shell = Shell(proc)
    args = list(args)
    script = None
    while args and args[0].startswith(("-", "+")) and args[0] not in ("-", "--"):
        arg = args.pop(0)
        if arg in ("-o", "+o"):
            status = _builtin_set(shell, proc, [arg, args.pop(0) if args else ""])
            if status:
                return status
            continue
        flags = arg[1:]
        if "c" in flags:
            if not args:
                proc.err("sh: -c requires an argument")
                return 2
            script = args.pop(0)
            flags = flags.replace("c", "")
        if flags and _builtin_set(shell, proc, [arg[0] + flags]):
            return 2
    if args and args[0] == "--":
        args.pop(0)
    if script is None:
        if args:
            try:
                with open(proc.host(args[0]), "rb") as handle:
                    script = handle.read().decode("utf-8", "surrogateescape")
            except OSError as exc:
                proc.err(f"sh: can't open '{args[0]}': {exc.strerror}")
                return 2
        else:
            script = proc.stdin.read().decode("utf-8", "surrogateescape")
    shell.positional = args or ["sh"]
    return shell.run_script(script)
