"""Running a parsed script: expansion, pipelines (one thread per stage over OS pipes), redirections, and
``run_sh``, the ``sh`` tool itself."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import threading
from dataclasses import dataclass, replace

from ..execshell import (
    BIN_DIRS,
    CaptureWriter,
    NullReader,
    NullWriter,
    PipeReader,
    PipeWriter,
    Proc,
    call_tool,
    lookup_tool,
    os_pipe,
)
from ..podfs import normalize
from .builtin import BUILTINS, builtin_set
from .lex import NAME, ShellExit, ShellSyntaxError, Word, tokenize
from .parse import AndOr, Pipeline, Redirect, SimpleCommand, parse

# ----------------------------------------------------------------------------- sh: running


class _RedirectError(Exception):
    pass


@dataclass
class Streams:
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
        streams = Streams(self.proc.stdin, self.proc.stdout, self.proc.stderr)
        if len(pipeline.commands) == 1:
            status = self._run_simple(pipeline.commands[0], streams)
        else:
            status = self._run_stages(pipeline.commands, streams)
        return (0 if status else 1) if pipeline.negated else status

    def _run_stages(self, commands: list[SimpleCommand], streams: Streams) -> int:
        """Each stage in its own thread, stdout of one piped into stdin of the next."""
        statuses = [0] * len(commands)
        threads = []
        stage_in = streams.stdin
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            if last:
                reader, stage_out = None, streams.stdout
            else:
                reader, stage_out = os_pipe()
            stage_streams = Streams(stage_in, stage_out, streams.stderr)
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
        elif NAME.fullmatch(name):
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
        pattern = "".join(
            value if not quoted else re.sub(r"([*?\[])", r"[\1]", value) for value, quoted in pieces
        )
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

    def _run_simple(self, command: SimpleCommand, streams: Streams) -> int:
        self._substitution_status = 0
        argv = self.expand_words(command.words)
        values = [
            (name, " ".join(self.expand_words([value])) if value.parts else "")
            for name, value in command.assignments
        ]
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

    def _redirect(self, redirects: list[Redirect], streams: Streams, opened: list) -> Streams:
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
        return Streams(current[0], current[1], current[2])

    def _dispatch(self, argv: list[str], streams: Streams) -> int:
        name = argv[0]
        proc = replace(
            self.proc, stdin=streams.stdin, stdout=streams.stdout, stderr=streams.stderr, cwd=self.cwd
        )
        builtin = BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, proc, argv[1:])
        tool = lookup_tool(self.proc.toolbox, name)
        if tool is None:
            proc.err(f"sh: {name}: not found")
            return 127
        return call_tool(tool, proc, argv)


def run_sh(proc: Proc, args: list[str]) -> int:
    """``sh [-eu] [-o pipefail] -c SCRIPT [NAME [ARGS...]]``, ``sh FILE``, or ``sh`` reading stdin."""
    shell = Shell(proc)
    args = list(args)
    script = None
    while args and args[0].startswith(("-", "+")) and args[0] not in ("-", "--"):
        arg = args.pop(0)
        if arg in ("-o", "+o"):
            status = builtin_set(shell, proc, [arg, args.pop(0) if args else ""])
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
        if flags and builtin_set(shell, proc, [arg[0] + flags]):
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
