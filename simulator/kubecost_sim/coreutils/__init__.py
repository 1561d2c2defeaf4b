"""The small programs of a simulated container (GNU coreutils/findutils wording and exit codes).

Each tool is ``tool(proc, args) -> exit code``; see :mod:`kubecost_sim.execshell` for ``Proc``.
Options are the ones scripts around Kubecost's ETL folder use, not the full GNU sets; an
unknown option fails like GNU does (message, ``Try '... --help'``, exit code).

One module per command family: ``basic`` (true, echo, printf, test, sleep, mktemp...), ``files``
(cat, sha256sum, mkdir, mv, rm), ``listing`` (ls, stat, du), ``text`` (head, tail, wc), ``find``;
``common`` holds the option parsing and name helpers they (and ``tartool``) share.
"""

from __future__ import annotations

from .basic import echo, false, mktemp, printf, pwd_tool, sleep, sync, test, true
from .files import cat, mkdir, mv, rm, sha256sum
from .find import find
from .listing import du, ls, stat
from .text import head, tail, wc

TOOLS = {
    "true": true,
    "false": false,
    "sync": sync,
    "pwd": pwd_tool,
    "echo": echo,
    "printf": printf,
    "cat": cat,
    "sha256sum": sha256sum,
    "test": test,
    "[": lambda proc, args: test(proc, args, "["),
    "mkdir": mkdir,
    "mv": mv,
    "rm": rm,
    "ls": ls,
    "stat": stat,
    "tail": tail,
    "head": head,
    "wc": wc,
    "du": du,
    "sleep": sleep,
    "mktemp": mktemp,
    "find": find,
}
