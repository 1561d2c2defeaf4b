"""The small programs of a simulated container (GNU coreutils/findutils wording and exit codes).

Each tool is ``tool(proc, args) -> exit code``; see :mod:`kubecost_sim.execshell` for ``Proc``.
Options are the ones scripts around Kubecost's ETL folder use, not the full GNU sets; an
unknown option fails like GNU does (message, ``Try '... --help'``, exit code).
"""

from __future__ import annotations

import errno
import fnmatch
import grp
import hashlib
import os
import posixpath
import pwd
import re
import secrets
import shutil
import stat as st
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from .execshell import ExecutableNotFound, Proc, Stop, copy_stream

_CHUNK = 1 << 16


# ------------------------------------------------------------------------------- helpers

def _usage(proc: Proc, prog: str, message: str, code: int = 1) -> Stop:
    proc.err(f"{prog}: {message}")
    proc.err(f"Try '{prog} --help' for more information.")
    return Stop(code)


def split_flags(proc: Proc, prog: str, args: list[str], flags: str, valued: str = "",
                long: dict[str, str] | None = None) -> tuple[dict[str, str | bool], list[str]]:
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
                raise _usage(proc, prog, f"unrecognized option '{arg}'")
            short = long[name]
            if short in valued:
                options[short] = value if "=" in arg else (args.pop(0) if args else "")
            else:
                options[short] = True
            continue
        if arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            for index, flag in enumerate(arg[1:], start=1):
                if flag in valued:
                    value = arg[index + 1:] or (args.pop(0) if args else None)
                    if value is None:
                        raise _usage(proc, prog, f"option requires an argument -- '{flag}'")
                    options[flag] = value
                    break
                if flag not in flags:
                    raise _usage(proc, prog, f"invalid option -- '{flag}'")
                options[flag] = True
            continue
        operands.append(arg)
    return options, operands


def _quote(name: str) -> str:
    return f"'{name}'"


@contextmanager
def _reading(proc: Proc, name: str, failure: str) -> Iterator:
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
    return {st.S_IFDIR: "directory", st.S_IFLNK: "symbolic link", st.S_IFIFO: "fifo",
            st.S_IFSOCK: "socket", st.S_IFCHR: "character special file",
            st.S_IFBLK: "block special file"}.get(st.S_IFMT(mode), "weird file")


def type_letter(mode: int) -> str:
    return {st.S_IFDIR: "d", st.S_IFLNK: "l", st.S_IFIFO: "p", st.S_IFSOCK: "s",
            st.S_IFCHR: "c", st.S_IFBLK: "b"}.get(st.S_IFMT(mode), "f")


def child_path(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else f"{parent}/{name}"


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
        text = _backslash_escapes(text)
    proc.out(text + ("\n" if newline else ""))
    return 0


def _backslash_escapes(text: str) -> str:
    table = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0", "a": "\a", "b": "\b",
             "f": "\f", "v": "\v", "e": "\x1b"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), text)


_PRINTF_SPEC = re.compile(r"%([-+ #0]*\d*(?:\.\d+)?)([sdiouxXcb%])")


def printf(proc: Proc, args: list[str]) -> int:
    if not args:
        proc.err("printf: missing operand")
        return 1
    template, values = _backslash_escapes(args[0]), list(args[1:])
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
            return ("%" + flags + "s") % (_backslash_escapes(value) if conversion == "b" else value)
        if conversion == "c":
            return value[:1]
        try:
            number = int(value or "0", 0)
        except ValueError:
            proc.err(f"printf: {value}: invalid number")
            failed, number = 1, 0
        return ("%" + flags + {"i": "d", "u": "d"}.get(conversion, conversion)) % number

    return _PRINTF_SPEC.sub(render, template), consumed, failed


def cat(proc: Proc, args: list[str]) -> int:
    _, operands = split_flags(proc, "cat", args, "u")
    status = 0
    for name in operands or ["-"]:
        with _reading(proc, name, f"cat: {name}") as handle:
            if handle is None:
                status = 1
                continue
            copy_stream(handle, proc.stdout)
    return status


def sha256sum(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "sha256sum", args, "cbt",
                                    long={"check": "c", "binary": "b", "text": "t", "quiet": "q",
                                          "status": "s", "strict": "S"})
    if options.get("c"):
        return _sha256_check(proc, operands or ["-"], quiet=bool(options.get("q")),
                             silent=bool(options.get("s")))
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
    with _reading(proc, name, f"{prog}: {name}") as handle:
        if handle is None:
            return None
        digest = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()


def _sha256_check(proc: Proc, lists: list[str], quiet: bool, silent: bool) -> int:
    failed = unreadable = 0
    for list_name in lists:
        with _reading(proc, list_name, f"sha256sum: {list_name}") as handle:
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
            "-e": True, "-r": True, "-w": True,
            "-f": st.S_ISREG(info.st_mode),
            "-d": st.S_ISDIR(info.st_mode),
            "-s": info.st_size > 0,
            "-L": st.S_ISLNK(info.st_mode), "-h": st.S_ISLNK(info.st_mode),
            "-x": bool(info.st_mode & 0o111),
        }[operator]
    if len(args) == 3:
        left, operator, right = args
        if operator == "=":
            return left == right
        if operator == "!=":
            return left != right
        comparisons = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__,
                       "-le": int.__le__, "-gt": int.__gt__, "-ge": int.__ge__}
        if operator in comparisons:
            try:
                return comparisons[operator](int(left), int(right))
            except ValueError:
                raise ValueError("integer expression expected") from None
        raise ValueError(f"{operator}: binary operator expected")
    raise ValueError("too many arguments")


def mkdir(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "mkdir", args, "pv", valued="m",
                                    long={"parents": "p", "verbose": "v", "mode": "m"})
    if not operands:
        raise _usage(proc, "mkdir", "missing operand")
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
                proc.err(f"mkdir: cannot create directory {_quote(name)}: File exists")
                status = 1
        except OSError as exc:
            proc.err(f"mkdir: cannot create directory {_quote(name)}: {exc.strerror}")
            status = 1
    return status


def mv(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "mv", args, "fivnT",
                                    long={"force": "f", "no-target-directory": "T",
                                          "no-clobber": "n", "verbose": "v"})
    if len(operands) < 2:
        raise _usage(proc, "mv", "missing file operand" if not operands else
                     f"missing destination file operand after {_quote(operands[0])}")
    *sources, destination = operands
    try:
        into_directory = not options.get("T") and os.path.isdir(proc.host(destination))
    except OSError:
        into_directory = False
    if len(sources) > 1 and not into_directory:
        proc.err(f"mv: target {_quote(destination)} is not a directory")
        return 1
    status = 0
    for source in sources:
        target = child_path(destination, posixpath.basename(source.rstrip("/"))) if into_directory \
            else destination
        try:
            source_host = proc.host(source, follow_symlinks=False)
            os.lstat(source_host)
        except OSError as exc:
            proc.err(f"mv: cannot stat {_quote(source)}: {exc.strerror}")
            status = 1
            continue
        try:
            proc.fs.check_removable(proc.path(source))
            proc.fs.check_removable(proc.path(target))
            if options.get("n") and os.path.lexists(proc.host(target, False)):
                continue
            _rename(source_host, proc.host(target, follow_symlinks=False))
        except OSError as exc:
            proc.err(f"mv: cannot move {_quote(source)} to {_quote(target)}: {exc.strerror}")
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
    options, operands = split_flags(proc, "rm", args, "rRfvid",
                                    long={"recursive": "r", "force": "f", "verbose": "v",
                                          "dir": "d", "no-preserve-root": "P"})
    recursive = bool(options.get("r") or options.get("R"))
    force = bool(options.get("f"))
    if not operands and not force:
        raise _usage(proc, "rm", "missing operand")
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
                proc.err(f"rm: cannot remove {_quote(name)}: {exc.strerror}")
                status = 1
            continue
        if st.S_ISDIR(info.st_mode) and not recursive:
            if not options.get("d"):
                proc.err(f"rm: cannot remove {_quote(name)}: Is a directory")
                status = 1
                continue
        if not _remove(proc, proc.path(name), name):
            status = 1
    return status


def _remove(proc: Proc, pod_path: str, shown: str) -> bool:
    """Remove a file or a tree, reporting each failure like ``rm -r``; True when all went."""
    try:
        host = proc.fs.host_path(pod_path, follow_symlinks=False)
        info = os.lstat(host)
    except OSError as exc:
        proc.err(f"rm: cannot remove {_quote(shown)}: {exc.strerror}")
        return False
    ok = True
    if st.S_ISDIR(info.st_mode):
        try:
            names = sorted(os.listdir(host))
        except OSError as exc:
            proc.err(f"rm: cannot remove {_quote(shown)}: {exc.strerror}")
            return False
        for name in names:
            ok = _remove(proc, child_path(pod_path, name), child_path(shown, name)) and ok
    try:
        proc.fs.check_removable(pod_path)
        if st.S_ISDIR(info.st_mode):
            os.rmdir(host)
        else:
            os.unlink(host)
    except OSError as exc:
        proc.err(f"rm: cannot remove {_quote(shown)}: {exc.strerror}")
        return False
    return ok


def ls(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "ls", args, "laA1dh",
                                    long={"all": "a", "almost-all": "A", "directory": "d"})
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
            proc.err(f"ls: cannot access {_quote(name)}: {exc.strerror}")
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
            proc.err(f"ls: cannot open directory {_quote(name)}: {exc.strerror}")
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
    return (f"{st.filemode(info.st_mode)} {info.st_nlink:>2} {user_name(info.st_uid)} "
            f"{group_name(info.st_gid)} {info.st_size:>8} {when} {shown}")


def stat(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "stat", args, "Lt", valued="cp",
                                    long={"format": "c", "printf": "p", "dereference": "L",
                                          "terse": "t"})
    if not operands:
        raise _usage(proc, "stat", "missing operand")
    template = options.get("c") if isinstance(options.get("c"), str) else None
    printf_template = options.get("p") if isinstance(options.get("p"), str) else None
    status = 0
    for name in operands:
        try:
            follow = bool(options.get("L"))
            info = os.stat(proc.host(name, follow), follow_symlinks=follow)
        except OSError as exc:
            proc.err(f"stat: cannot stat {_quote(name)}: {exc.strerror}")
            status = 1
            continue
        if printf_template is not None:
            proc.out(_stat_format(_backslash_escapes(printf_template), name, info))
        elif template is not None:
            proc.out(_stat_format(template, name, info) + "\n")
        else:
            proc.out(f"  File: {name}\n  Size: {info.st_size:<15} Blocks: {info.st_blocks:<10} "
                     f"{file_type_name(info.st_mode, info.st_size)}\n"
                     f"Access: ({info.st_mode & 0o7777:04o}/{st.filemode(info.st_mode)})  "
                     f"Uid: ({info.st_uid}/{user_name(info.st_uid)})   "
                     f"Gid: ({info.st_gid}/{group_name(info.st_gid)})\n"
                     f"Modify: {_human_time(info.st_mtime_ns)}\n")
    return status


def _human_time(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d} +0000"


def _stat_format(template: str, name: str, info: os.stat_result) -> str:
    def render(match):
        code = match.group(1)
        values: dict[str, Callable[[], object]] = {
            "n": lambda: name, "N": lambda: _quote(name), "s": lambda: info.st_size,
            "Y": lambda: int(info.st_mtime), "X": lambda: int(info.st_atime), "Z": lambda: int(info.st_ctime),
            "y": lambda: _human_time(info.st_mtime_ns), "F": lambda: file_type_name(info.st_mode, info.st_size),
            "a": lambda: f"{info.st_mode & 0o7777:o}", "A": lambda: st.filemode(info.st_mode),
            "u": lambda: info.st_uid, "g": lambda: info.st_gid, "U": lambda: user_name(info.st_uid),
            "G": lambda: group_name(info.st_gid), "i": lambda: info.st_ino, "h": lambda: info.st_nlink,
            "b": lambda: info.st_blocks, "f": lambda: f"{info.st_mode:x}", "%": lambda: "%",
        }
        return str(values[code]()) if code in values else "?"
    return re.sub(r"%(.)", render, template)


def tail(proc: Proc, args: list[str]) -> int:
    return _head_or_tail(proc, "tail", args)


def head(proc: Proc, args: list[str]) -> int:
    return _head_or_tail(proc, "head", args)


def _head_or_tail(proc: Proc, prog: str, args: list[str]) -> int:
    args = [f"-n{a[1:]}" if re.fullmatch(r"-\d+", a) else a for a in args]  # "tail -5"
    options, operands = split_flags(proc, prog, args, "qv", valued="cn",
                                    long={"bytes": "c", "lines": "n", "quiet": "q"})
    by_bytes = "c" in options
    count_text = str(options.get("c") if by_bytes else options.get("n", "10"))
    from_start = count_text.startswith("+")
    try:
        count = int(count_text.lstrip("+-"))
    except ValueError:
        proc.err(f"{prog}: invalid number of {'bytes' if by_bytes else 'lines'}: {_quote(count_text)}")
        return 1
    status = 0
    for name in operands or ["-"]:
        with _reading(proc, name, f"{prog}: cannot open {_quote(name)} for reading") as handle:
            if handle is None:
                status = 1
            elif prog == "head":
                _head(proc, handle, count, by_bytes)
            elif from_start:
                _tail_from(proc, handle, max(count, 1), by_bytes)
            else:
                _tail_last(proc, handle, count, by_bytes)
    return status


def _head(proc: Proc, handle, count: int, by_bytes: bool) -> None:
    if by_bytes:
        while count > 0 and (chunk := handle.read(min(_CHUNK, count))):
            proc.stdout.write(chunk)
            count -= len(chunk)
        return
    while count > 0 and (chunk := handle.read(_CHUNK)):
        lines = chunk.split(b"\n")
        if len(lines) - 1 >= count:
            proc.stdout.write(b"\n".join(lines[:count]) + b"\n")
            return
        proc.stdout.write(chunk)
        count -= len(lines) - 1


def _tail_from(proc: Proc, handle, start: int, by_bytes: bool) -> None:
    """``tail -c +N`` / ``-n +N``: everything from byte/line N on (1-based), streaming."""
    skip = start - 1
    while chunk := handle.read(_CHUNK):
        if skip == 0:
            proc.stdout.write(chunk)
            continue
        if by_bytes:
            if len(chunk) <= skip:
                skip -= len(chunk)
                continue
            proc.stdout.write(chunk[skip:])
            skip = 0
            continue
        position = 0
        while skip and (newline := chunk.find(b"\n", position)) >= 0:
            position, skip = newline + 1, skip - 1
        if skip == 0:
            proc.stdout.write(chunk[position:])


def _tail_last(proc: Proc, handle, count: int, by_bytes: bool) -> None:
    """The last N bytes/lines, keeping only a bounded window in memory."""
    window = bytearray()
    while chunk := handle.read(_CHUNK):
        window += chunk
        if by_bytes:
            del window[:max(0, len(window) - count)]
        elif window.count(b"\n") > count + 1:
            cut = len(window)
            for _ in range(count + 1):
                cut = window.rfind(b"\n", 0, cut)
            del window[:cut + 1]
    if not by_bytes:
        lines = bytes(window).split(b"\n")
        trailing = lines[-1] == b""
        lines = lines[:-1] if trailing else lines
        window = bytearray(b"\n".join(lines[-count:] if count else []) + (b"\n" if trailing and count else b""))
    proc.stdout.write(bytes(window))


def wc(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "wc", args, "clw",
                                    long={"bytes": "c", "lines": "l", "words": "w"})
    wanted = [flag for flag in "lwc" if options.get(flag)] or ["l", "w", "c"]
    status = 0
    totals = {"l": 0, "w": 0, "c": 0}
    rows = []
    for name in operands or ["-"]:
        with _reading(proc, name, f"wc: {name}") as handle:
            if handle is None:
                status = 1
                continue
            counts = _wc_counts(handle, words="w" in wanted)
        for key in totals:
            totals[key] += counts[key]
        rows.append((counts, "" if name == "-" and not operands else name))
    if len(rows) > 1:
        rows.append((totals, "total"))
    width = 1 if len(wanted) == 1 and len(rows) == 1 else max(len(str(totals[k])) for k in wanted)
    for counts, name in rows:
        cells = " ".join(f"{counts[k]:>{width}}" for k in wanted)
        proc.out(f"{cells} {name}\n" if name else f"{cells}\n")
    return status


def _wc_counts(handle, words: bool) -> dict[str, int]:
    counts = {"l": 0, "w": 0, "c": 0}
    in_word = False
    while chunk := handle.read(_CHUNK):
        counts["c"] += len(chunk)
        counts["l"] += chunk.count(b"\n")
        if words:
            for byte in chunk:
                space = byte in b" \t\n\r\v\f"
                if not space and not in_word:
                    counts["w"] += 1
                in_word = not space
    return counts


def du(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "du", args, "sbkac",
                                    long={"summarize": "s", "bytes": "b", "apparent-size": "A",
                                          "total": "c"})
    apparent = bool(options.get("b") or options.get("A"))
    status = 0
    grand_total = 0
    for name in operands or ["."]:
        total = 0
        try:
            for _, info in _walk(proc, proc.path(name)):
                total += info.st_size if apparent else info.st_blocks * 512
        except OSError as exc:
            proc.err(f"du: cannot access {_quote(name)}: {exc.strerror}")
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


def sleep(proc: Proc, args: list[str]) -> int:
    if not args:
        raise _usage(proc, "sleep", "missing operand")
    seconds = 0.0
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?)([smhd]?)", arg)
        if not match:
            proc.err(f"sleep: invalid time interval {_quote(arg)}")
            return 1
        seconds += float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    proc.cancelled.wait(seconds)  # a disconnected exec client ends the sleep early
    return 0


def mktemp(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "mktemp", args, "dqtu", valued="p",
                                    long={"directory": "d", "tmpdir": "p", "quiet": "q"})
    template = operands[0] if operands else "tmp.XXXXXXXXXX"
    match = re.search(r"X{3,}$", template)
    if not match:
        proc.err(f"mktemp: too few X's in template {_quote(template)}")
        return 1
    if "/" not in template or options.get("p") or options.get("t"):
        directory = options.get("p") if isinstance(options.get("p"), str) else "/tmp"
        template = child_path(directory, template)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    kind = "directory" if options.get("d") else "file"
    for _ in range(100):
        name = template[:-len(match.group())] + "".join(secrets.choice(alphabet) for _ in match.group())
        try:
            host = proc.host(name)
            if options.get("d"):
                os.mkdir(host, 0o700)
            else:
                os.close(os.open(host, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            proc.err(f"mktemp: failed to create {kind} via template {_quote(template)}: {exc.strerror}")
            return 1
        proc.out(proc.path(name) + "\n")
        return 0
    proc.err(f"mktemp: failed to create {kind} via template {_quote(template)}: File exists")
    return 1


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
                raise _FindError(f"paths must precede expression: {_quote(self.tokens[self.position])}")
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
            raise _FindError(f"missing argument to {_quote(self.tokens[-1])}")
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
                raise _FindError(f"Expected a positive decimal integer argument to {token}, but got {_quote(value)}")
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
            return lambda entry: (entry.info.st_size == 0 if st.S_ISREG(entry.info.st_mode)
                                  else st.S_ISDIR(entry.info.st_mode) and not os.listdir(entry.host))
        if token in ("-true", "-false"):
            return lambda entry: token == "-true"
        if token == "-newer":
            reference = self._take()
            try:
                mtime = os.stat(self.proc.host(reference)).st_mtime_ns
            except OSError as exc:
                raise _FindError(f"{_quote(reference)}: {exc.strerror}") from None
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
            raise _FindError(f"unknown predicate {_quote(token)}")
        raise _FindError(f"paths must precede expression: {_quote(token)}")

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
            self.proc.err(f"find: {_quote(argv[0])}: No such file or directory")
            self.status = 1
            return 127

    def _delete(self, entry: _FindEntry) -> bool:
        if entry.depth == 0 and entry.path in (".", "./"):
            return True
        if not _remove(self.proc, self.proc.path(entry.path), entry.path):
            self.status = 1
            return False
        return True

    # -- traversal

    def search(self, start: str) -> int:
        try:
            host = self.proc.host(start, follow_symlinks=False)
            info = os.lstat(host)
        except OSError as exc:
            self.proc.err(f"find: {_quote(start)}: {exc.strerror}")
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
                self.proc.err(f"find: {_quote(entry.path)}: {exc.strerror}")
                self.status = 1
                names = []
            for name in names:
                path = child_path(entry.path, name)
                try:
                    host = self.proc.host(path, follow_symlinks=False)
                    info = os.lstat(host)
                except OSError as exc:
                    self.proc.err(f"find: {_quote(path)}: {exc.strerror}")
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
    relative = entry.path[len(entry.start):].lstrip("/") if entry.depth else ""

    def time_field(kind: str, seconds_ns: int) -> str:
        if kind == "@":
            seconds, nanos = divmod(seconds_ns, 1_000_000_000)
            return f"{seconds}.{nanos:09d}0"
        return time.strftime("%" + kind, time.gmtime(seconds_ns / 1e9))

    def render(match) -> str:
        escape, directive = match.group(1), match.group(2)
        if escape:
            return {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "r": "\r", "a": "\a"}.get(escape, "\\" + escape)
        if len(directive) == 2:  # %T@, %TY, ... (also %A and %C)
            stamp = {"T": info.st_mtime_ns, "A": info.st_atime_ns, "C": info.st_ctime_ns}[directive[0]]
            return time_field(directive[1], stamp)
        values = {
            "p": lambda: entry.path, "P": lambda: relative, "f": lambda: _basename(entry.path),
            "h": lambda: posixpath.dirname(entry.path.rstrip("/")) or ".",
            "s": lambda: str(info.st_size), "m": lambda: f"{info.st_mode & 0o7777:o}",
            "M": lambda: st.filemode(info.st_mode), "y": lambda: type_letter(info.st_mode),
            "d": lambda: str(entry.depth), "u": lambda: user_name(info.st_uid),
            "g": lambda: group_name(info.st_gid), "U": lambda: str(info.st_uid),
            "G": lambda: str(info.st_gid), "n": lambda: str(info.st_nlink),
            "i": lambda: str(info.st_ino), "k": lambda: str(-(-info.st_blocks // 2)),
            "t": lambda: time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(info.st_mtime)),
            "%": lambda: "%",
        }
        return values[directive]() if directive in values else "%" + directive

    return re.sub(r"\\(.)|%([TAC].|.)", render, template)


TOOLS = {
    "true": true, "false": false, "sync": sync, "pwd": pwd_tool, "echo": echo, "printf": printf,
    "cat": cat, "sha256sum": sha256sum, "test": test, "[": lambda proc, args: test(proc, args, "["),
    "mkdir": mkdir, "mv": mv, "rm": rm, "ls": ls, "stat": stat, "tail": tail, "head": head,
    "wc": wc, "du": du, "sleep": sleep, "mktemp": mktemp, "find": find,
}
