"""Simulated file tools that read or change files: cat, sha256sum (and -c), mkdir, mv, rm."""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import shutil
import stat as st

from ..execshell import Proc, copy_stream
from .common import child_path, quote, reading, split_flags, usage


def cat(proc: Proc, args: list[str]) -> int:
    _, operands = split_flags(proc, "cat", args, "u")
    status = 0
    for name in operands or ["-"]:
        with reading(proc, name, f"cat: {name}") as handle:
            if handle is None:
                status = 1
                continue
            copy_stream(handle, proc.stdout)
    return status


def sha256sum(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc,
        "sha256sum",
        args,
        "cbt",
        long={"check": "c", "binary": "b", "text": "t", "quiet": "q", "status": "s", "strict": "S"},
    )
    if options.get("c"):
        return _sha256_check(
            proc, operands or ["-"], quiet=bool(options.get("q")), silent=bool(options.get("s"))
        )
    status = 0
    marker = "*" if options.get("b") else " "
    for name in operands or ["-"]:
        digest = _digest(proc, "sha256sum", name)
        if digest is None:
            status = 1
            continue
        proc.out(f"{digest} {marker}{name}\n")
    return status


def _digest(proc: Proc, prog: str, name: str) -> str | None:
    with reading(proc, name, f"{prog}: {name}") as handle:
        if handle is None:
            return None
        digest = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()


def _sha256_check(proc: Proc, lists: list[str], quiet: bool, silent: bool) -> int:
    failed = unreadable = 0
    for list_name in lists:
        with reading(proc, list_name, f"sha256sum: {list_name}") as handle:
            if handle is None:
                return 1
            text = handle.read().decode("utf-8", "surrogateescape")
        for line in text.splitlines():
            match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
            if not match:
                continue
            expected, name = match.groups()
            actual = _digest(proc, "sha256sum", name)
            if actual is None:
                unreadable += 1
                if not silent:
                    proc.out(f"{name}: FAILED open or read\n")
            elif actual != expected.lower():
                failed += 1
                if not silent:
                    proc.out(f"{name}: FAILED\n")
            elif not (quiet or silent):
                proc.out(f"{name}: OK\n")
    if unreadable and not silent:
        plural = "s" if unreadable > 1 else ""
        proc.err(f"sha256sum: WARNING: {unreadable} listed file{plural} could not be read")
    if failed and not silent:
        plural = "s" if failed > 1 else ""
        proc.err(f"sha256sum: WARNING: {failed} computed checksum{plural} did NOT match")
    return 1 if failed or unreadable else 0


def mkdir(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc, "mkdir", args, "pv", valued="m", long={"parents": "p", "verbose": "v", "mode": "m"}
    )
    if not operands:
        raise usage(proc, "mkdir", "missing operand")
    mode = int(options["m"], 8) if isinstance(options.get("m"), str) else 0o777
    status = 0
    for name in operands:
        try:
            path = proc.host(name)
            if options.get("p"):
                os.makedirs(path, mode=mode, exist_ok=True)
            else:
                os.mkdir(path, mode)
        except FileExistsError:
            if not options.get("p") or not os.path.isdir(proc.host(name)):
                proc.err(f"mkdir: cannot create directory {quote(name)}: File exists")
                status = 1
        except OSError as exc:
            proc.err(f"mkdir: cannot create directory {quote(name)}: {exc.strerror}")
            status = 1
    return status


def mv(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc,
        "mv",
        args,
        "fivnT",
        long={"force": "f", "no-target-directory": "T", "no-clobber": "n", "verbose": "v"},
    )
    if len(operands) < 2:
        raise usage(
            proc,
            "mv",
            "missing file operand"
            if not operands
            else f"missing destination file operand after {quote(operands[0])}",
        )
    *sources, destination = operands
    try:
        into_directory = not options.get("T") and os.path.isdir(proc.host(destination))
    except OSError:
        into_directory = False
    if len(sources) > 1 and not into_directory:
        proc.err(f"mv: target {quote(destination)} is not a directory")
        return 1
    status = 0
    for source in sources:
        target = (
            child_path(destination, posixpath.basename(source.rstrip("/"))) if into_directory else destination
        )
        try:
            source_host = proc.host(source, follow_symlinks=False)
            os.lstat(source_host)
        except OSError as exc:
            proc.err(f"mv: cannot stat {quote(source)}: {exc.strerror}")
            status = 1
            continue
        try:
            proc.fs.check_removable(proc.path(source))
            proc.fs.check_removable(proc.path(target))
            if options.get("n") and os.path.lexists(proc.host(target, False)):
                continue
            _rename(source_host, proc.host(target, follow_symlinks=False))
        except OSError as exc:
            proc.err(f"mv: cannot move {quote(source)} to {quote(target)}: {exc.strerror}")
            status = 1
    return status


def _rename(source, target) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, target)  # the host keeps the two folders on different filesystems


def rm(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(
        proc,
        "rm",
        args,
        "rRfvid",
        long={"recursive": "r", "force": "f", "verbose": "v", "dir": "d", "no-preserve-root": "P"},
    )
    recursive = bool(options.get("r") or options.get("R"))
    force = bool(options.get("f"))
    if not operands and not force:
        raise usage(proc, "rm", "missing operand")
    status = 0
    for name in operands:
        if recursive and proc.path(name) == "/":
            proc.err("rm: it is dangerous to operate recursively on '/'")
            proc.err("rm: use --no-preserve-root to override this failsafe")
            status = 1
            continue
        try:
            info = os.lstat(proc.host(name, follow_symlinks=False))
        except OSError as exc:
            if not (force and exc.errno == 2):
                proc.err(f"rm: cannot remove {quote(name)}: {exc.strerror}")
                status = 1
            continue
        if st.S_ISDIR(info.st_mode) and not recursive:
            if not options.get("d"):
                proc.err(f"rm: cannot remove {quote(name)}: Is a directory")
                status = 1
                continue
        if not remove_entry(proc, proc.path(name), name):
            status = 1
    return status


def remove_entry(proc: Proc, pod_path: str, shown: str) -> bool:
    """Remove a file or a tree, reporting each failure like ``rm -r``; True when all went."""
    try:
        host = proc.fs.host_path(pod_path, follow_symlinks=False)
        info = os.lstat(host)
    except OSError as exc:
        proc.err(f"rm: cannot remove {quote(shown)}: {exc.strerror}")
        return False
    ok = True
    if st.S_ISDIR(info.st_mode):
        try:
            names = sorted(os.listdir(host))
        except OSError as exc:
            proc.err(f"rm: cannot remove {quote(shown)}: {exc.strerror}")
            return False
        for name in names:
            ok = remove_entry(proc, child_path(pod_path, name), child_path(shown, name)) and ok
    try:
        proc.fs.check_removable(pod_path)
        if st.S_ISDIR(info.st_mode):
            os.rmdir(host)
        else:
            os.unlink(host)
    except OSError as exc:
        proc.err(f"rm: cannot remove {quote(shown)}: {exc.strerror}")
        return False
    return ok
