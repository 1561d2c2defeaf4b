"""The shell's builtins: ``exit cd set export unset : command``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..execshell import Proc, lookup_tool
from ..podfs import normalize
from .lex import ShellExit

if TYPE_CHECKING:
    from .run import Shell


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


def builtin_set(shell: Shell, proc: Proc, args: list[str]) -> int:
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
            from .run import Streams  # imported late: run imports this module

            return shell._dispatch(args, Streams(proc.stdin, proc.stdout, proc.stderr))
        return 0
    status = 0
    for name in args[1:]:
        if name in BUILTINS:
            proc.out(name + "\n")
        elif lookup_tool(proc.toolbox, name) is not None:
            proc.out((name if "/" in name else f"/bin/{name}") + "\n")
        else:
            status = 1
    return status


BUILTINS = {
    "exit": _builtin_exit,
    "cd": _builtin_cd,
    "set": builtin_set,
    "export": _builtin_export,
    "unset": _builtin_unset,
    ":": lambda shell, proc, args: 0,
    "command": _builtin_command,
}
