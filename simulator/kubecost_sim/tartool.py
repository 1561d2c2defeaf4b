"""``tar`` as GNU tar 1.34 behaves for the ways kubectl cp and backup scripts call it.

Create (``c``), extract (``x``) and list (``t``), streaming through stdout/stdin or a pod file
(``-f``), with old-style (``tar cf - dir``), bundled (``-xmf -``) and long options. Positional
``-C DIR``, ``-T FILE``/``--files-from`` (``-`` reads the name list from stdin, newline- or, with
``--null``, NUL-separated), ``--no-recursion``, ``--exclude``, ``-z``, ``--format``, ``-m``,
``-p``/``--no-same-permissions``, ``--no-same-owner``, ``-O``, ``--strip-components``.

Messages and exit codes follow GNU tar: 0 ok, 1 "file changed as we read it", 2 errors (with
"Exiting with failure status due to previous errors"). Archives are written in GNU format,
entries in name order (like ``--sort=name``), padded to 10 KiB records. Extraction refuses
member names containing ``..`` and links that would leave the mapped folders.
"""

from __future__ import annotations

import gzip
import os
import stat as st
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .coreutils.common import child_path, group_name, user_name
from .execshell import Proc, Stop, copy_stream
from .podfs import normalize

BLOCK = 512
RECORD = 20 * BLOCK  # GNU tar's default blocking factor 20
_CHUNK = 1 << 16
_UMASK = 0o022
_FORMATS = {
    "gnu": tarfile.GNU_FORMAT,
    "oldgnu": tarfile.GNU_FORMAT,
    "ustar": tarfile.USTAR_FORMAT,
    "v7": tarfile.USTAR_FORMAT,
    "posix": tarfile.PAX_FORMAT,
    "pax": tarfile.PAX_FORMAT,
}

# long option -> (key, takes an argument); keys of one letter are the matching short options
_LONG_OPTIONS = {
    "create": ("c", False),
    "extract": ("x", False),
    "get": ("x", False),
    "list": ("t", False),
    "file": ("f", True),
    "directory": ("C", True),
    "files-from": ("T", True),
    "exclude-from": ("X", True),
    "exclude": ("exclude", True),
    "null": ("null", False),
    "no-null": ("no-null", False),
    "recursion": ("recursion", False),
    "no-recursion": ("no-recursion", False),
    "same-permissions": ("p", False),
    "preserve-permissions": ("p", False),
    "no-same-permissions": ("no-same-permissions", False),
    "same-owner": ("same-owner", False),
    "no-same-owner": ("o", False),
    "numeric-owner": ("numeric-owner", False),
    "touch": ("m", False),
    "verbose": ("v", False),
    "gzip": ("z", False),
    "gunzip": ("z", False),
    "ungzip": ("z", False),
    "to-stdout": ("O", False),
    "strip-components": ("strip-components", True),
    "format": ("H", True),
    "sort": ("sort", True),
    "warning": ("warning", True),
    "overwrite": ("overwrite", False),
    "unlink-first": ("U", False),
    "keep-old-files": ("k", False),
    "absolute-names": ("P", False),
    "blocking-factor": ("b", True),
    "verbatim-files-from": ("verbatim-files-from", False),
    "help": ("help", False),
    "usage": ("help", False),
    "version": ("version", False),
}
_SHORT_FLAGS = set("cxtvzmpoOPkU")
_SHORT_VALUED = set("fCTXbH")

_HELP = """Usage: tar [OPTION...] [FILE]...
GNU 'tar' saves many files together into a single tape or disk archive, and can
restore individual files from the archive.

 Main operation mode:
  -c, --create               create a new archive
  -t, --list                 list the contents of an archive
  -x, --extract, --get       extract files from an archive
 Common options:
  -C, --directory=DIR        change to directory DIR
  -f, --file=ARCHIVE         use archive file or device ARCHIVE
  -T, --files-from=FILE      get names to extract or create from FILE
      --null                 -T reads null-terminated names
  -m, --touch                don't extract file modified time
  -v, --verbose              verbosely list files processed
  -z, --gzip                 filter the archive through gzip
"""


def _fail(proc: Proc, message: str) -> Stop:
    proc.err(f"tar: {message}")
    proc.err("Try 'tar --help' or 'tar --usage' for more information.")
    return Stop(2)


@dataclass
class _Options:
    modes: list[str] = field(default_factory=list)
    archive: str = "-"
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (kind "name"/"list", cwd, value)
    directory: str | None = None
    flags: set[str] = field(default_factory=set)
    excludes: list[str] = field(default_factory=list)
    exclude_lists: list[tuple[str, str]] = field(default_factory=list)
    strip_components: int = 0
    format: int = tarfile.GNU_FORMAT


def _parse(proc: Proc, args: list[str]) -> _Options:
    options = _Options()
    cwd = proc.cwd
    args = list(args)
    pending_values: list[str] = []  # old-style "cf": values for f, C, ... follow in order
    if args and args[0] and not args[0].startswith("-"):
        bundle = args.pop(0)
        for letter in bundle:
            if letter in _SHORT_VALUED:
                pending_values.append(letter)
            elif letter in _SHORT_FLAGS:
                _apply(options, letter, None)
            else:
                raise _fail(proc, f"invalid option -- '{letter}'")
        for letter in pending_values:
            if not args:
                raise _fail(proc, f"option requires an argument -- '{letter}'")
            cwd = _apply(options, letter, args.pop(0), cwd, proc)
    only_names = False
    while args:
        arg = args.pop(0)
        if only_names or arg == "-" or not arg.startswith("-"):
            options.items.append(("name", cwd, arg))
            continue
        if arg == "--":
            only_names = True
            continue
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            matches = [long for long in _LONG_OPTIONS if long == name] or [
                long for long in _LONG_OPTIONS if long.startswith(name)
            ]
            if len(matches) != 1:
                problem = "unrecognized" if not matches else "ambiguous"
                raise _fail(proc, f"{problem} option '--{name}'")
            key, takes_value = _LONG_OPTIONS[matches[0]]
            if takes_value and not has_value:
                if not args:
                    raise _fail(proc, f"option '--{matches[0]}' requires an argument")
                value = args.pop(0)
            elif not takes_value and has_value:
                raise _fail(proc, f"option '--{matches[0]}' doesn't allow an argument")
            cwd = _apply(options, key, value if takes_value else None, cwd, proc)
            continue
        for index, letter in enumerate(arg[1:], start=1):
            if letter in _SHORT_VALUED:
                value = arg[index + 1 :] or (args.pop(0) if args else None)
                if value is None:
                    raise _fail(proc, f"option requires an argument -- '{letter}'")
                cwd = _apply(options, letter, value, cwd, proc)
                break
            if letter not in _SHORT_FLAGS:
                raise _fail(proc, f"invalid option -- '{letter}'")
            _apply(options, letter, None)
    return options


def _apply(options: _Options, key: str, value: str | None, cwd: str = "/", proc: Proc | None = None) -> str:
    """Record one option; returns the directory later names are relative to (``-C`` moves it)."""
    if key in ("c", "x", "t"):
        if key not in options.modes:
            options.modes.append(key)
    elif key == "f":
        options.archive = value
    elif key == "C":
        cwd = normalize(value, cwd)
        options.directory = cwd
    elif key == "T":
        options.items.append(("list", cwd, value))
    elif key == "X":
        options.exclude_lists.append((cwd, value))
    elif key == "exclude":
        options.excludes.append(value)
    elif key == "strip-components":
        if not value.isdigit():
            raise _fail(proc, f"Invalid number of elements: '{value}'")
        options.strip_components = int(value)
    elif key == "H":
        if value not in _FORMATS:
            raise _fail(proc, f"Invalid archive format: '{value}'")
        options.format = _FORMATS[value]
    elif key == "no-null":
        options.flags.discard("null")
    else:
        options.flags.add(key)  # plain switches, including accepted no-ops (sort, warning, b, ...)
    return cwd


def tar(proc: Proc, args: list[str]) -> int:
    options = _parse(proc, args)
    if "help" in options.flags:
        proc.out(_HELP)
        return 0
    if "version" in options.flags:
        proc.out("tar (GNU tar) 1.34\n")
        return 0
    if not options.modes:
        raise _fail(proc, "You must specify one of the '-Acdtrux', '--delete' or '--test-label' options")
    if len(options.modes) > 1:
        raise _fail(
            proc, "You may not specify more than one '-Acdtrux', '--delete' or  '--test-label' option"
        )
    job = _Job(proc, options)
    if options.modes[0] == "c":
        return job.create()
    return job.read_archive(extract=options.modes[0] == "x")


class _Job:
    def __init__(self, proc: Proc, options: _Options):
        self.proc = proc
        self.options = options
        self.status = 0
        self.warned_absolute = False
        self.written = 0
        self.out = None
        self.archive_host = None
        self.hard_links: dict[tuple[int, int], str] = {}

    def error(self, message: str) -> None:
        self.proc.err(f"tar: {message}")
        self.status = 2

    def warn(self, message: str) -> None:
        self.proc.err(f"tar: {message}")
        self.status = max(self.status, 1)

    def finish(self) -> int:
        if self.status == 2:
            self.proc.err("tar: Exiting with failure status due to previous errors")
        return self.status

    def fatal(self, message: str) -> Stop:
        self.proc.err(f"tar: {message}")
        self.proc.err("tar: Error is not recoverable: exiting now")
        return Stop(2)

    def _relative(self, name: str) -> str:
        """``name`` without its leading ``/`` (kept with ``-P``; ``/`` becomes ``./``), warning once."""
        if not name.startswith("/") or "P" in self.options.flags:
            return name
        if not self.warned_absolute:
            self.proc.err("tar: Removing leading `/' from member names")
            self.warned_absolute = True
        return name.lstrip("/") or "./"

    def _excluded(self, member_name: str) -> bool:
        name = member_name.rstrip("/")
        base = name.rsplit("/", 1)[-1]
        patterns = self.options.excludes
        return any(_fnmatch(name, p) or _fnmatch(base, p) for p in patterns)

    # ------------------------------------------------------------------------- create

    def create(self) -> int:
        names = self._names()
        if not names:
            raise _fail(self.proc, "Cowardly refusing to create an empty archive")
        self.options.excludes += self._read_exclude_lists()
        target = self._open_archive_for_writing()
        compressor = (
            gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0)
            if "z" in self.options.flags
            else None
        )
        self.out = compressor or target
        verbose_to = self.proc.stderr if self.options.archive == "-" else self.proc.stdout
        try:
            recurse = "no-recursion" not in self.options.flags
            for cwd, name in names:
                self._add(normalize(name, cwd), self._relative(name), recurse, verbose_to)
            self._write(b"\0" * (2 * BLOCK))
            self._write(b"\0" * (-self.written % RECORD))
        finally:
            if compressor is not None:
                compressor.close()
            if target is not self.proc.stdout:
                target.close()
        return self.finish()

    def _names(self) -> list[tuple[str, str]]:
        names = []
        for kind, cwd, value in self.options.items:
            if kind == "name":
                names.append((cwd, value))
                continue
            data = self._read_source(value, cwd)
            separator = b"\0" if "null" in self.options.flags else b"\n"
            for raw in data.split(separator):
                raw = raw.rstrip(b"\r") if separator == b"\n" else raw
                if raw:
                    names.append((cwd, raw.decode("utf-8", "surrogateescape")))
        return names

    def _read_exclude_lists(self) -> list[str]:
        patterns = []
        for cwd, source in self.options.exclude_lists:
            patterns += [
                p for p in self._read_source(source, cwd).decode("utf-8", "surrogateescape").splitlines() if p
            ]
        return patterns

    def _read_source(self, source: str, cwd: str) -> bytes:
        if source == "-":
            return self.proc.stdin.read()
        try:
            with open(self.proc.fs.host_path(source, cwd=cwd), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise self.fatal(f"{source}: Cannot open: {exc.strerror}") from None

    def _open_archive_for_writing(self):
        if self.options.archive == "-":
            return self.proc.stdout
        try:
            self.archive_host = self.proc.host(self.options.archive)
            return open(self.archive_host, "wb")  # noqa: SIM115 - closed at the end of create()
        except OSError as exc:
            raise self.fatal(f"{self.options.archive}: Cannot open: {exc.strerror}") from None

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def _add(self, pod_path: str, member: str, recurse: bool, verbose_to) -> None:
        fs = self.proc.fs
        if self.options.excludes and self._excluded(member):
            return
        try:
            host = fs.host_path(pod_path, follow_symlinks=False)
            info = os.lstat(host)
        except OSError as exc:
            self.error(f"{member}: Cannot stat: {exc.strerror}")
            return
        if self.archive_host is not None and os.path.samefile(host, self.archive_host):
            self.warn(f"{member}: file is the archive; not dumped")
            return
        header = tarfile.TarInfo(member)
        header.mode = info.st_mode & 0o7777
        header.mtime = int(info.st_mtime)
        header.uid, header.gid = info.st_uid, info.st_gid
        header.uname, header.gname = user_name(info.st_uid), group_name(info.st_gid)
        if "v" in self.options.flags:
            verbose_to.write(
                (
                    member + ("/" if st.S_ISDIR(info.st_mode) and not member.endswith("/") else "") + "\n"
                ).encode("utf-8", "surrogateescape")
            )
        if st.S_ISDIR(info.st_mode):
            header.type = tarfile.DIRTYPE
            self._write_header(header)
            if not recurse:
                return
            try:
                children = sorted(os.listdir(host))  # a folder, not a link: resolving it changes nothing
            except OSError as exc:
                self.error(f"{member}: Cannot open: {exc.strerror}")
                return
            for child in children:
                self._add(
                    child_path(pod_path, child),
                    child_path(member.rstrip("/") or ".", child),
                    True,
                    verbose_to,
                )
        elif st.S_ISREG(info.st_mode):
            key = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and key in self.hard_links:
                header.type, header.linkname = tarfile.LNKTYPE, self.hard_links[key]
                self._write_header(header)
                return
            self._add_file(host, info, header)
            if info.st_nlink > 1:
                self.hard_links[key] = member
        elif st.S_ISLNK(info.st_mode):
            header.type, header.linkname = tarfile.SYMTYPE, os.readlink(host)
            self._write_header(header)
        elif st.S_ISFIFO(info.st_mode):
            header.type = tarfile.FIFOTYPE
            self._write_header(header)
        else:
            self.warn(
                f"{member}: socket ignored" if st.S_ISSOCK(info.st_mode) else f"{member}: Cannot add: device"
            )

    def _write_header(self, header: tarfile.TarInfo) -> None:
        self._write(header.tobuf(self.options.format, "utf-8", "surrogateescape"))

    def _add_file(self, host, info: os.stat_result, header: tarfile.TarInfo) -> None:
        try:
            handle = open(host, "rb")  # noqa: SIM115 - closed below; opened before the header, as GNU tar does
        except OSError as exc:
            self.error(f"{header.name}: Cannot open: {exc.strerror}")
            return
        with handle:
            header.size = info.st_size
            self._write_header(header)
            remaining = info.st_size
            while remaining > 0:
                chunk = handle.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self._write(chunk)
                remaining -= len(chunk)
            if remaining:
                self.error(f"{header.name}: File shrank by {remaining} bytes; padding with zeros")
                while remaining:  # keep the archive consistent with the header already written
                    zeros = min(_CHUNK, remaining)
                    self._write(b"\0" * zeros)
                    remaining -= zeros
            self._write(b"\0" * (-info.st_size % BLOCK))
            after = os.fstat(handle.fileno())
        if after.st_mtime_ns != info.st_mtime_ns or after.st_size != info.st_size:
            self.warn(f"{header.name}: file changed as we read it")

    # ---------------------------------------------------------------- extract and list

    def read_archive(self, extract: bool) -> int:
        base = self.options.directory or self.proc.cwd
        if extract:
            try:
                if not os.path.isdir(self.proc.fs.host_path(base)):
                    raise FileNotFoundError(2, "No such file or directory")
            except OSError as exc:
                raise self.fatal(f"{base}: Cannot open: {exc.strerror}") from None
        source = self._open_archive_for_reading()
        wanted = {_clean(name): False for kind, _, name in self.options.items if kind == "name"}
        stream = _InputStream(source)
        magic = stream.peek(3)
        mode = "r|gz" if magic[:2] == b"\x1f\x8b" else "r|bz2" if magic == b"BZh" else "r|"
        directories = []
        try:
            try:
                archive = tarfile.open(fileobj=stream, mode=mode)
            except tarfile.ReadError:
                if stream.total == 0:
                    return self.finish()  # an empty archive: nothing to do, as GNU tar
                self.error("This does not look like a tar archive")
                return self.finish()
            for member in archive:
                self._read_member(archive, member, base, extract, wanted, directories)
            if stream.eof and mode == "r|" and stream.total % BLOCK:
                raise tarfile.ReadError("unexpected end of data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
            raise self.fatal("Unexpected EOF in archive") from None
        finally:
            if source is not self.proc.stdin:
                source.close()
        for host, member in reversed(directories):  # after the contents, as GNU tar does
            self._set_metadata(host, member)
        for name, seen in wanted.items():
            if not seen:
                self.error(f"{name}: Not found in archive")
        return self.finish()

    def _open_archive_for_reading(self):
        if self.options.archive == "-":
            return self.proc.stdin
        try:
            return open(self.proc.host(self.options.archive), "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise self.fatal(f"{self.options.archive}: Cannot open: {exc.strerror}") from None

    def _read_member(
        self,
        archive,
        member: tarfile.TarInfo,
        base: str,
        extract: bool,
        wanted: dict[str, bool],
        directories: list,
    ) -> None:
        parts = [part for part in self._relative(member.name).split("/") if part not in ("", ".")]
        if wanted:
            relative = "/".join(parts)
            match = next((w for w in wanted if relative == w or relative.startswith(w + "/")), None)
            if match is None:
                return
            wanted[match] = True
        if not extract:
            self._list(member)
            return
        if ".." in parts:
            self.error(f"{member.name}: Member name contains '..'")
            return
        parts = parts[self.options.strip_components :] if self.options.strip_components else parts
        if not parts:
            return
        if self.options.excludes and self._excluded("/".join(parts)):
            return
        if "v" in self.options.flags:
            self.proc.out(member.name + "\n")
        if "O" in self.options.flags:
            if member.isreg():
                copy_stream(archive.extractfile(member), self.proc.stdout)
            return
        target = normalize("/".join(parts), base)
        fs = self.proc.fs
        try:
            if member.isdir():
                host = fs.host_path(target)
                os.makedirs(host, exist_ok=True)
                directories.append((host, member))
                return
            self._make_parents(target)
            host = fs.host_path(target, follow_symlinks=False)
            if os.path.isdir(host) and not os.path.islink(host):
                raise IsADirectoryError(21, "Is a directory")
            if os.path.lexists(host):
                os.unlink(host)  # GNU tar replaces existing files rather than writing through them
            if member.isreg():
                with open(host, "wb") as out:
                    copy_stream(archive.extractfile(member), out)
                self._set_metadata(host, member)
            elif member.issym():
                if not fs.symlink_stays_inside(target, member.linkname):
                    self.error(
                        f"{'/'.join(parts)}: Cannot create symlink to '{member.linkname}': Permission denied"
                    )
                    return
                os.symlink(member.linkname, host)
            elif member.islnk():
                link_parts = [p for p in member.linkname.lstrip("/").split("/") if p not in ("", ".")]
                link_parts = link_parts[self.options.strip_components :]
                if ".." in link_parts:
                    self.error(
                        f"{'/'.join(parts)}: Cannot hard link to '{member.linkname}': Permission denied"
                    )
                    return
                os.link(fs.host_path("/".join(link_parts), follow_symlinks=False, cwd=base), host)
            elif member.isfifo():
                os.mkfifo(host, member.mode & 0o777)
            else:
                self.error(f"{'/'.join(parts)}: Cannot mknod: Operation not permitted")
        except OSError as exc:
            self.error(f"{'/'.join(parts)}: Cannot open: {exc.strerror}")

    def _make_parents(self, target: str) -> None:
        parent = target.rsplit("/", 1)[0] or "/"
        os.makedirs(self.proc.fs.host_path(parent), exist_ok=True)

    def _set_metadata(self, host, member: tarfile.TarInfo) -> None:
        keep_all = "p" in self.options.flags and "no-same-permissions" not in self.options.flags
        os.chmod(host, member.mode & (0o7777 if keep_all else 0o777 & ~_UMASK))
        if "m" not in self.options.flags:
            os.utime(host, (member.mtime, member.mtime))

    def _list(self, member: tarfile.TarInfo) -> None:
        name = member.name + ("/" if member.isdir() and not member.name.endswith("/") else "")
        if "v" not in self.options.flags:
            self.proc.out(name + "\n")
            return
        kind = "d" if member.isdir() else "l" if member.issym() else "h" if member.islnk() else "-"
        mode = kind + st.filemode(member.mode)[1:]
        owner = f"{member.uname or member.uid}/{member.gname or member.gid}"
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(member.mtime))
        suffix = (
            f" -> {member.linkname}"
            if member.issym()
            else f" link to {member.linkname}"
            if member.islnk()
            else ""
        )
        self.proc.out(f"{mode} {owner} {member.size:>{max(1, 19 - len(owner))}} {when} {name}{suffix}\n")


def _fnmatch(name: str, pattern: str) -> bool:
    return fnmatchcase(name, pattern) or fnmatchcase(_clean(name), pattern)


def _clean(name: str) -> str:
    """A member name without leading ``/``, ``./`` and empty parts (``./a//b/`` -> ``a/b``)."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


class _InputStream:
    """Reads the archive for tarfile, counting bytes and noting EOF (to spot cut archives)."""

    def __init__(self, source):
        self.source = source
        self.pending = b""
        self.total = 0
        self.eof = False

    def peek(self, size: int) -> bytes:
        while len(self.pending) < size and not self.eof:
            chunk = self.source.read(_CHUNK)
            if not chunk:
                self.eof = True
                break
            self.pending += chunk
        return self.pending[:size]

    def read(self, size: int = -1) -> bytes:
        if self.pending:
            data = self.pending if size < 0 else self.pending[:size]
            self.pending = self.pending[len(data) :]
        elif self.eof:
            data = b""
        else:
            data = self.source.read(_CHUNK if size < 0 else size)
            if not data:
                self.eof = True
        self.total += len(data)
        return data


TOOLS = {"tar": tar}
