"""Simulated tools that describe files: ls, stat, du."""

from __future__ import annotations

import os
import re
import stat as st
import time
from collections.abc import Callable

from ..execshell import Proc
from .common import (
    backslash_escapes,
    child_path,
    file_type_name,
    group_name,
    quote,
    split_flags,
    usage,
    user_name,
)


def ls(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc, "ls", args, "laA1dh", long={"all": "a", "almost-all": "A", "directory": "d"}
    )
    long_format = bool(options.get("l"))
    status = 0
    files, directories = [], []
    for name in operands or ["."]:
        try:
            host = proc.host(name, follow_symlinks=False)
            info = os.lstat(host)
            if st.S_ISLNK(info.st_mode) and not long_format:
                info = os.stat(proc.host(name))
        except OSError as exc:
            proc.err(f"ls: cannot access {quote(name)}: {exc.strerror}")
            status = 2
            continue
        if st.S_ISDIR(info.st_mode) and not options.get("d"):
            directories.append(name)
        else:
            files.append((name, info, host))
    lines = [_ls_line(entry, long_format) for entry in files]
    if lines:
        proc.out("\n".join(lines) + "\n")
    show_headers = len(directories) + len(files) > 1
    for index, name in enumerate(directories):
        entries = []
        try:
            host = proc.host(name)
            names = sorted(os.listdir(host))
            if options.get("a"):
                names = [".", ".."] + names
            elif not options.get("A"):
                names = [n for n in names if not n.startswith(".")]
            for entry in names:
                entry_host = host if entry == "." else host.parent if entry == ".." else host / entry
                try:
                    entries.append((entry, os.lstat(entry_host), entry_host))
                except OSError:
                    continue
        except OSError as exc:
            proc.err(f"ls: cannot open directory {quote(name)}: {exc.strerror}")
            status = 2
            continue
        if show_headers:
            proc.out(("\n" if files or index else "") + f"{name}:\n")
        if long_format:
            blocks = sum(info.st_blocks for _, info, _ in entries) // 2
            proc.out(f"total {blocks}\n")
        for entry in entries:
            proc.out(_ls_line(entry, long_format) + "\n")
    return status


def _ls_line(entry, long_format: bool) -> str:
    name, info, host = entry
    if not long_format:
        return name
    mtime = info.st_mtime
    if abs(time.time() - mtime) < 180 * 86400:
        when = time.strftime("%b %e %H:%M", time.gmtime(mtime))
    else:
        when = time.strftime("%b %e  %Y", time.gmtime(mtime))
    shown = name
    if st.S_ISLNK(info.st_mode):
        shown += " -> " + os.readlink(host)
    return (
        f"{st.filemode(info.st_mode)} {info.st_nlink:>2} {user_name(info.st_uid)} "
        f"{group_name(info.st_gid)} {info.st_size:>8} {when} {shown}"
    )


def stat(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc,
        "stat",
        args,
        "Lt",
        valued="cp",
        long={"format": "c", "printf": "p", "dereference": "L", "terse": "t"},
    )
    if not operands:
        raise usage(proc, "stat", "missing operand")
    template = options.get("c") if isinstance(options.get("c"), str) else None
    printf_template = options.get("p") if isinstance(options.get("p"), str) else None
    status = 0
    for name in operands:
        try:
            follow = bool(options.get("L"))
            info = os.stat(proc.host(name, follow), follow_symlinks=follow)
        except OSError as exc:
            proc.err(f"stat: cannot stat {quote(name)}: {exc.strerror}")
            status = 1
            continue
        if printf_template is not None:
            proc.out(_stat_format(backslash_escapes(printf_template), name, info))
        elif template is not None:
            proc.out(_stat_format(template, name, info) + "\n")
        else:
            proc.out(
                f"  File: {name}\n  Size: {info.st_size:<15} Blocks: {info.st_blocks:<10} "
                f"{file_type_name(info.st_mode, info.st_size)}\n"
                f"Access: ({info.st_mode & 0o7777:04o}/{st.filemode(info.st_mode)})  "
                f"Uid: ({info.st_uid}/{user_name(info.st_uid)})   "
                f"Gid: ({info.st_gid}/{group_name(info.st_gid)})\n"
                f"Modify: {_human_time(info.st_mtime_ns)}\n"
            )
    return status


def _human_time(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d} +0000"


def _stat_format(template: str, name: str, info: os.stat_result) -> str:
    def render(match):
        code = match.group(1)
        values: dict[str, Callable[[], object]] = {
            "n": lambda: name,
            "N": lambda: quote(name),
            "s": lambda: info.st_size,
            "Y": lambda: int(info.st_mtime),
            "X": lambda: int(info.st_atime),
            "Z": lambda: int(info.st_ctime),
            "y": lambda: _human_time(info.st_mtime_ns),
            "F": lambda: file_type_name(info.st_mode, info.st_size),
            "a": lambda: f"{info.st_mode & 0o7777:o}",
            "A": lambda: st.filemode(info.st_mode),
            "u": lambda: info.st_uid,
            "g": lambda: info.st_gid,
            "U": lambda: user_name(info.st_uid),
            "G": lambda: group_name(info.st_gid),
            "i": lambda: info.st_ino,
            "h": lambda: info.st_nlink,
            "b": lambda: info.st_blocks,
            "f": lambda: f"{info.st_mode:x}",
            "%": lambda: "%",
        }
        return str(values[code]()) if code in values else "?"

    return re.sub(r"%(.)", render, template)


def du(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc, "du", args, "sbkac", long={"summarize": "s", "bytes": "b", "apparent-size": "A", "total": "c"}
    )
    apparent = bool(options.get("b") or options.get("A"))
    status = 0
    grand_total = 0
    for name in operands or ["."]:
        total = 0
        try:
            for _, info in _walk(proc, proc.path(name)):
                total += info.st_size if apparent else info.st_blocks * 512
        except OSError as exc:
            proc.err(f"du: cannot access {quote(name)}: {exc.strerror}")
            status = 1
            continue
        grand_total += total
        shown = total if options.get("b") else -(-total // 1024)
        proc.out(f"{shown}\t{name}\n")
    if options.get("c"):
        proc.out(f"{grand_total if options.get('b') else -(-grand_total // 1024)}\ttotal\n")
    return status


def _walk(proc: Proc, pod_path: str):
    """(pod path, lstat) of a path and, for a folder, everything below it (sorted)."""
    host = proc.fs.host_path(pod_path, follow_symlinks=False)
    info = os.lstat(host)
    yield pod_path, info
    if st.S_ISDIR(info.st_mode):  # a folder, not a link: its host path is already resolved
        for name in sorted(os.listdir(host)):
            yield from _walk(proc, child_path(pod_path, name))
