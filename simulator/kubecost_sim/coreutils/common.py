"""Helpers the simulated tools share: GNU-style option parsing and usage errors, reading with GNU's
messages, user and group names, file type names."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat as st
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from ..execshell import Proc, Stop

CHUNK = 1 << 16


# ------------------------------------------------------------------------------- helpers


def usage(proc: Proc, prog: str, message: str, code: int = 1) -> Stop:
    proc.err(f"{prog}: {message}")
    proc.err(f"Try '{prog} --help' for more information.")
    return Stop(code)


def split_flags(
    proc: Proc, prog: str, args: list[str], flags: str, valued: str = "", long: dict[str, str] | None = None
) -> tuple[dict[str, str | bool], list[str]]:
    """GNU-style option parsing: bundled short flags, ``--`` and long aliases of short ones."""
    options: dict[str, str | bool] = {}
    operands: list[str] = []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--":
            operands.extend(args)
            break
        if arg.startswith("--") and long is not None:
            name, _, value = arg[2:].partition("=")
            if name not in long:
                raise usage(proc, prog, f"unrecognized option '{arg}'")
            short = long[name]
            if short in valued:
                options[short] = value if "=" in arg else (args.pop(0) if args else "")
            else:
                options[short] = True
            continue
        if arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            for index, flag in enumerate(arg[1:], start=1):
                if flag in valued:
                    value = arg[index + 1 :] or (args.pop(0) if args else None)
                    if value is None:
                        raise usage(proc, prog, f"option requires an argument -- '{flag}'")
                    options[flag] = value
                    break
                if flag not in flags:
                    raise usage(proc, prog, f"invalid option -- '{flag}'")
                options[flag] = True
            continue
        operands.append(arg)
    return options, operands


def quote(name: str) -> str:
    return f"'{name}'"


@contextmanager
def reading(proc: Proc, name: str, failure: str) -> Iterator:
    """An input operand's stream (``-`` is stdin, left open; files are closed afterwards).

    None when it cannot be opened, after printing ``<failure>: <reason>`` to stderr.
    """
    try:
        if name == "-":
            handle = proc.stdin
        elif os.path.isdir(path := proc.host(name)):
            raise IsADirectoryError(21, "Is a directory", name)
        else:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        proc.err(f"{failure}: {exc.strerror}")
        yield None
        return
    try:
        yield handle
    finally:
        if handle is not proc.stdin:
            handle.close()


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_type_name(mode: int, size: int) -> str:
    if st.S_ISREG(mode):
        return "regular empty file" if size == 0 else "regular file"
    return {
        st.S_IFDIR: "directory",
        st.S_IFLNK: "symbolic link",
        st.S_IFIFO: "fifo",
        st.S_IFSOCK: "socket",
        st.S_IFCHR: "character special file",
        st.S_IFBLK: "block special file",
    }.get(st.S_IFMT(mode), "weird file")


def type_letter(mode: int) -> str:
    return {
        st.S_IFDIR: "d",
        st.S_IFLNK: "l",
        st.S_IFIFO: "p",
        st.S_IFSOCK: "s",
        st.S_IFCHR: "c",
        st.S_IFBLK: "b",
    }.get(st.S_IFMT(mode), "f")


def child_path(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else f"{parent}/{name}"


def backslash_escapes(text: str) -> str:
    table = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "\\": "\\",
        "0": "\0",
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "v": "\v",
        "e": "\x1b",
    }
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), text)
