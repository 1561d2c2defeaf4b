"""Simulated GNU find: the tests, actions and -printf directives scripts around the ETL folder use."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat as st
import time

from ..execshell import ExecutableNotFound, Proc
from .common import child_path, group_name, quote, type_letter, user_name
from .files import remove_entry

# ------------------------------------------------------------------------------------ find


class _FindError(Exception):
    pass


class _FindEntry:
    __slots__ = ("path", "start", "depth", "info", "host")

    def __init__(self, path: str, start: str, depth: int, info: os.stat_result, host):
        self.path, self.start, self.depth, self.info, self.host = path, start, depth, info, host


def find(proc: Proc, args: list[str]) -> int:
    args = list(args)
    while args and args[0] in ("-P", "-H", "-L"):
        args.pop(0)
    starts = []
    while args and not (args[0].startswith("-") or args[0] in ("!", "(", ")")):
        starts.append(args.pop(0))
    try:
        finder = _Finder(proc, args)
    except _FindError as exc:
        proc.err(f"find: {exc}")
        return 1
    status = 0
    for start in starts or ["."]:
        status = finder.search(start) or status
    status = finder.finish() or status
    return status


class _Finder:
    """A find expression: tests, actions, ``!``/``-a``/``-o``/parentheses and global options."""

    def __init__(self, proc: Proc, args: list[str]):
        self.proc = proc
        self.min_depth, self.max_depth = 0, None
        self.batches: list[tuple[list[str], list[str]]] = []  # "-exec ... {} +": (command, paths)
        self.status = 0
        self.tokens = args
        self.position = 0
        self.has_action = False
        self.depth_first = False  # -delete removes a folder's contents before the folder
        if args:
            self.expression = self._parse_or()
            if self.position < len(self.tokens):
                raise _FindError(f"paths must precede expression: {quote(self.tokens[self.position])}")
        else:
            self.expression = lambda entry: True
        if not self.has_action:
            condition = self.expression
            self.expression = lambda entry: condition(entry) and self._print(entry, "\n")

    # -- parsing (precedence: ! > -a > -o)

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        if self.position >= len(self.tokens):
            raise _FindError(f"missing argument to {quote(self.tokens[-1])}")
        self.position += 1
        return self.tokens[self.position - 1]

    def _parse_or(self):
        left = self._parse_and()
        while self._peek() in ("-o", "-or"):
            self._take()
            right = self._parse_and()
            left = (lambda a, b: lambda entry: a(entry) or b(entry))(left, right)
        return left

    def _parse_and(self):
        left = self._parse_not()
        while self._peek() not in (None, "-o", "-or", ")"):
            if self._peek() in ("-a", "-and"):
                self._take()
            right = self._parse_not()
            left = (lambda a, b: lambda entry: a(entry) and b(entry))(left, right)
        return left

    def _parse_not(self):
        if self._peek() in ("!", "-not"):
            self._take()
            inner = self._parse_not()
            return lambda entry: not inner(entry)
        if self._peek() == "(":
            self._take()
            inner = self._parse_or()
            if self._take() != ")":
                raise _FindError("invalid expression; I was expecting to find a ')' somewhere")
            return inner
        return self._parse_primary()

    def _parse_primary(self):
        token = self._take()
        if token in ("-mindepth", "-maxdepth"):
            value = self._take()
            if not value.isdigit():
                raise _FindError(
                    f"Expected a positive decimal integer argument to {token}, but got {quote(value)}"
                )
            if token == "-mindepth":
                self.min_depth = int(value)
            else:
                self.max_depth = int(value)
            return lambda entry: True
        if token in ("-depth", "-xdev", "-mount", "-noleaf"):
            return lambda entry: True
        if token == "-type":
            letters = set(self._take().split(","))
            return lambda entry: type_letter(entry.info.st_mode) in letters
        if token in ("-name", "-iname"):
            pattern = self._take()
            if token == "-iname":
                return lambda entry: fnmatch.fnmatchcase(_basename(entry.path).lower(), pattern.lower())
            return lambda entry: fnmatch.fnmatchcase(_basename(entry.path), pattern)
        if token in ("-path", "-wholename"):
            pattern = self._take()
            return lambda entry: fnmatch.fnmatchcase(entry.path, pattern)
        if token == "-empty":
            return lambda entry: (
                entry.info.st_size == 0
                if st.S_ISREG(entry.info.st_mode)
                else st.S_ISDIR(entry.info.st_mode) and not os.listdir(entry.host)
            )
        if token in ("-true", "-false"):
            return lambda entry: token == "-true"
        if token == "-newer":
            reference = self._take()
            try:
                mtime = os.stat(self.proc.host(reference)).st_mtime_ns
            except OSError as exc:
                raise _FindError(f"{quote(reference)}: {exc.strerror}") from None
            return lambda entry: entry.info.st_mtime_ns > mtime
        if token in ("-print", "-print0"):
            self.has_action = True
            end = "\n" if token == "-print" else "\0"
            return lambda entry: self._print(entry, end)
        if token == "-printf":
            if self.proc.toolbox.busybox:
                raise _FindError("unrecognized: -printf")
            self.has_action = True
            template = self._take()
            return lambda entry: self._printf(entry, template)
        if token == "-exec":
            self.has_action = True
            return self._parse_exec()
        if token == "-delete":
            self.has_action = True
            self.depth_first = True
            return self._delete
        if token.startswith("-"):
            raise _FindError(f"unknown predicate {quote(token)}")
        raise _FindError(f"paths must precede expression: {quote(token)}")

    def _parse_exec(self):
        command = []
        while True:
            token = self._take()
            if token == ";":
                return lambda entry: self._exec_each(command, entry)
            if token == "+" and command and command[-1] == "{}":
                batch: tuple[list[str], list[str]] = (command[:-1], [])
                self.batches.append(batch)
                return lambda entry: self._exec_batch(batch, entry)
            command.append(token)

    # -- actions

    def _print(self, entry: _FindEntry, end: str) -> bool:
        self.proc.out(entry.path + end)
        return True

    def _printf(self, entry: _FindEntry, template: str) -> bool:
        self.proc.out(_find_format(template, entry))
        return True

    def _exec_each(self, command: list[str], entry: _FindEntry) -> bool:
        argv = [entry.path if part == "{}" else part.replace("{}", entry.path) for part in command]
        return self._run(argv) == 0

    def _exec_batch(self, batch: tuple[list[str], list[str]], entry: _FindEntry) -> bool:
        batch[1].append(entry.path)
        if sum(len(p) + 1 for p in batch[1]) > 128 * 1024:  # like ARG_MAX: run and start anew
            self._flush(batch)
        return True

    def _flush(self, batch: tuple[list[str], list[str]]) -> None:
        command, paths = batch
        if paths:
            if self._run(command + paths) != 0:
                self.status = 1
            paths.clear()

    def _run(self, argv: list[str]) -> int:
        try:
            return self.proc.run(argv)
        except ExecutableNotFound:
            self.proc.err(f"find: {quote(argv[0])}: No such file or directory")
            self.status = 1
            return 127

    def _delete(self, entry: _FindEntry) -> bool:
        if entry.depth == 0 and entry.path in (".", "./"):
            return True
        if not remove_entry(self.proc, self.proc.path(entry.path), entry.path):
            self.status = 1
            return False
        return True

    # -- traversal

    def search(self, start: str) -> int:
        try:
            host = self.proc.host(start, follow_symlinks=False)
            info = os.lstat(host)
        except OSError as exc:
            self.proc.err(f"find: {quote(start)}: {exc.strerror}")
            return 1
        self._visit(_FindEntry(start, start, 0, info, host))
        return self.status

    def _visit(self, entry: _FindEntry) -> None:
        evaluate = entry.depth >= self.min_depth
        if evaluate and not self.depth_first:
            self.expression(entry)
        if st.S_ISDIR(entry.info.st_mode) and (self.max_depth is None or entry.depth < self.max_depth):
            try:
                names = sorted(os.listdir(entry.host))
            except OSError as exc:
                self.proc.err(f"find: {quote(entry.path)}: {exc.strerror}")
                self.status = 1
                names = []
            for name in names:
                path = child_path(entry.path, name)
                try:
                    host = self.proc.host(path, follow_symlinks=False)
                    info = os.lstat(host)
                except OSError as exc:
                    self.proc.err(f"find: {quote(path)}: {exc.strerror}")
                    self.status = 1
                    continue
                self._visit(_FindEntry(path, entry.start, entry.depth + 1, info, host))
        if evaluate and self.depth_first:
            self.expression(entry)

    def finish(self) -> int:
        for batch in self.batches:
            self._flush(batch)
        return self.status


def _basename(path: str) -> str:
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def _find_format(template: str, entry: _FindEntry) -> str:
    info = entry.info
    relative = entry.path[len(entry.start) :].lstrip("/") if entry.depth else ""

    def time_field(kind: str, seconds_ns: int) -> str:
        if kind == "@":
            seconds, nanos = divmod(seconds_ns, 1_000_000_000)
            return f"{seconds}.{nanos:09d}0"
        return time.strftime("%" + kind, time.gmtime(seconds_ns / 1e9))

    def render(match) -> str:
        escape, directive = match.group(1), match.group(2)
        if escape:
            return {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "r": "\r", "a": "\a"}.get(
                escape, "\\" + escape
            )
        if len(directive) == 2:  # %T@, %TY, ... (also %A and %C)
            stamp = {"T": info.st_mtime_ns, "A": info.st_atime_ns, "C": info.st_ctime_ns}[directive[0]]
            return time_field(directive[1], stamp)
        values = {
            "p": lambda: entry.path,
            "P": lambda: relative,
            "f": lambda: _basename(entry.path),
            "h": lambda: posixpath.dirname(entry.path.rstrip("/")) or ".",
            "s": lambda: str(info.st_size),
            "m": lambda: f"{info.st_mode & 0o7777:o}",
            "M": lambda: st.filemode(info.st_mode),
            "y": lambda: type_letter(info.st_mode),
            "d": lambda: str(entry.depth),
            "u": lambda: user_name(info.st_uid),
            "g": lambda: group_name(info.st_gid),
            "U": lambda: str(info.st_uid),
            "G": lambda: str(info.st_gid),
            "n": lambda: str(info.st_nlink),
            "i": lambda: str(info.st_ino),
            "k": lambda: str(-(-info.st_blocks // 2)),
            "t": lambda: time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(info.st_mtime)),
            "%": lambda: "%",
        }
        return values[directive]() if directive in values else "%" + directive

    return re.sub(r"\\(.)|%([TAC].|.)", render, template)
