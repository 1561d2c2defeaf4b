"""Simulated shell builtins and small tools: true, false, sync, pwd, echo, printf, test/[, sleep, mktemp."""

from __future__ import annotations

import os
import re
import secrets
import stat as st

from ..execshell import Proc
from .common import backslash_escapes, child_path, quote, split_flags, usage

# ----------------------------------------------------------------------------- the tools


def true(proc: Proc, args: list[str]) -> int:
    return 0


def false(proc: Proc, args: list[str]) -> int:
    return 1


def sync(proc: Proc, args: list[str]) -> int:
    return 0


def pwd_tool(proc: Proc, args: list[str]) -> int:
    proc.out(proc.cwd + "\n")
    return 0


def echo(proc: Proc, args: list[str]) -> int:
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0] or (escapes and "E" not in args[0])
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = backslash_escapes(text)
    proc.out(text + ("\n" if newline else ""))
    return 0


_PRINTF_SPEC = re.compile(r"%([-+ #0]*\d*(?:\.\d+)?)([sdiouxXcb%])")


def printf(proc: Proc, args: list[str]) -> int:
    if not args:
        proc.err("printf: missing operand")
        return 1
    template, values = backslash_escapes(args[0]), list(args[1:])
    status = 0
    while True:  # the format is reused while arguments remain, as in POSIX printf
        text, consumed, failed = _printf_once(proc, template, values)
        proc.out(text)
        status = status or failed
        if consumed == 0 or consumed >= len(values):
            return status
        values = values[consumed:]


def _printf_once(proc: Proc, template: str, values: list[str]) -> tuple[str, int, int]:
    consumed = failed = 0

    def render(match) -> str:
        nonlocal consumed, failed
        flags, conversion = match.groups()
        if conversion == "%":
            return "%"
        value = values[consumed] if consumed < len(values) else ""
        consumed += 1
        if conversion in "sb":
            return ("%" + flags + "s") % (backslash_escapes(value) if conversion == "b" else value)
        if conversion == "c":
            return value[:1]
        try:
            number = int(value or "0", 0)
        except ValueError:
            proc.err(f"printf: {value}: invalid number")
            failed, number = 1, 0
        return ("%" + flags + {"i": "d", "u": "d"}.get(conversion, conversion)) % number

    return _PRINTF_SPEC.sub(render, template), consumed, failed


def test(proc: Proc, args: list[str], prog: str = "test") -> int:
    if prog == "[":
        if not args or args[-1] != "]":
            proc.err("[: missing ']'")
            return 2
        args = args[:-1]
    negate = False
    if args and args[0] == "!" and len(args) > 1:
        negate, args = True, args[1:]
    try:
        result = _evaluate_test(proc, args)
    except ValueError as exc:
        proc.err(f"{prog}: {exc}")
        return 2
    return 0 if result != negate else 1


def _evaluate_test(proc: Proc, args: list[str]) -> bool:
    if not args:
        return False
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        operator, operand = args
        if operator == "-n":
            return operand != ""
        if operator == "-z":
            return operand == ""
        if operator not in ("-e", "-f", "-d", "-s", "-L", "-h", "-r", "-w", "-x"):
            raise ValueError(f"{operator}: unary operator expected")
        try:
            follow = operator not in ("-L", "-h")
            info = os.stat(proc.host(operand, follow), follow_symlinks=follow)
        except OSError:
            return False
        return {
            "-e": True,
            "-r": True,
            "-w": True,
            "-f": st.S_ISREG(info.st_mode),
            "-d": st.S_ISDIR(info.st_mode),
            "-s": info.st_size > 0,
            "-L": st.S_ISLNK(info.st_mode),
            "-h": st.S_ISLNK(info.st_mode),
            "-x": bool(info.st_mode & 0o111),
        }[operator]
    if len(args) == 3:
        left, operator, right = args
        if operator == "=":
            return left == right
        if operator == "!=":
            return left != right
        comparisons = {
            "-eq": int.__eq__,
            "-ne": int.__ne__,
            "-lt": int.__lt__,
            "-le": int.__le__,
            "-gt": int.__gt__,
            "-ge": int.__ge__,
        }
        if operator in comparisons:
            try:
                return comparisons[operator](int(left), int(right))
            except ValueError:
                raise ValueError("integer expression expected") from None
        raise ValueError(f"{operator}: binary operator expected")
    raise ValueError("too many arguments")


def sleep(proc: Proc, args: list[str]) -> int:
    if not args:
        raise usage(proc, "sleep", "missing operand")
    seconds = 0.0
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?)([smhd]?)", arg)
        if not match:
            proc.err(f"sleep: invalid time interval {quote(arg)}")
            return 1
        seconds += float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    proc.cancelled.wait(seconds)  # a disconnected exec client ends the sleep early
    return 0


def mktemp(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc, "mktemp", args, "dqtu", valued="p", long={"directory": "d", "tmpdir": "p", "quiet": "q"}
    )
    template = operands[0] if operands else "tmp.XXXXXXXXXX"
    match = re.search(r"X{3,}$", template)
    if not match:
        proc.err(f"mktemp: too few X's in template {quote(template)}")
        return 1
    if "/" not in template or options.get("p") or options.get("t"):
        directory = options.get("p") if isinstance(options.get("p"), str) else "/tmp"
        template = child_path(directory, template)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    kind = "directory" if options.get("d") else "file"
    for _ in range(100):
        name = template[: -len(match.group())] + "".join(secrets.choice(alphabet) for _ in match.group())
        try:
            host = proc.host(name)
            if options.get("d"):
                os.mkdir(host, 0o700)
            else:
                os.close(os.open(host, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            proc.err(f"mktemp: failed to create {kind} via template {quote(template)}: {exc.strerror}")
            return 1
        proc.out(proc.path(name) + "\n")
        return 0
    proc.err(f"mktemp: failed to create {kind} via template {quote(template)}: File exists")
    return 1
