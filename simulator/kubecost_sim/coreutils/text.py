"""Simulated text tools: head, tail, wc."""

from __future__ import annotations

import re

from ..execshell import Proc
from .common import CHUNK, quote, reading, split_flags


def tail(proc: Proc, args: list[str]) -> int:
    return _head_or_tail(proc, "tail", args)


def head(proc: Proc, args: list[str]) -> int:
    return _head_or_tail(proc, "head", args)


def _head_or_tail(proc: Proc, prog: str, args: list[str]) -> int:
    args = [f"-n{a[1:]}" if re.fullmatch(r"-\d+", a) else a for a in args]  # "tail -5"
    options, operands = split_flags(
        proc, prog, args, "qv", valued="cn", long={"bytes": "c", "lines": "n", "quiet": "q"}
    )
    by_bytes = "c" in options
    count_text = str(options.get("c") if by_bytes else options.get("n", "10"))
    from_start = count_text.startswith("+")
    try:
        count = int(count_text.lstrip("+-"))
    except ValueError:
        proc.err(f"{prog}: invalid number of {'bytes' if by_bytes else 'lines'}: {quote(count_text)}")
        return 1
    status = 0
    for name in operands or ["-"]:
        with reading(proc, name, f"{prog}: cannot open {quote(name)} for reading") as handle:
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
        while count > 0 and (chunk := handle.read(min(CHUNK, count))):
            proc.stdout.write(chunk)
            count -= len(chunk)
        return
    while count > 0 and (chunk := handle.read(CHUNK)):
        lines = chunk.split(b"\n")
        if len(lines) - 1 >= count:
            proc.stdout.write(b"\n".join(lines[:count]) + b"\n")
            return
        proc.stdout.write(chunk)
        count -= len(lines) - 1


def _tail_from(proc: Proc, handle, start: int, by_bytes: bool) -> None:
    """``tail -c +N`` / ``-n +N``: everything from byte/line N on (1-based), streaming."""
    skip = start - 1
    while chunk := handle.read(CHUNK):
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
    while chunk := handle.read(CHUNK):
        window += chunk
        if by_bytes:
            del window[: max(0, len(window) - count)]
        elif window.count(b"\n") > count + 1:
            cut = len(window)
            for _ in range(count + 1):
                cut = window.rfind(b"\n", 0, cut)
            del window[: cut + 1]
    if not by_bytes:
        lines = bytes(window).split(b"\n")
        trailing = lines[-1] == b""
        lines = lines[:-1] if trailing else lines
        window = bytearray(
            b"\n".join(lines[-count:] if count else []) + (b"\n" if trailing and count else b"")
        )
    proc.stdout.write(bytes(window))


def wc(proc: Proc, args: list[str]) -> int:
    options, operands = split_flags(proc, "wc", args, "clw", long={"bytes": "c", "lines": "l", "words": "w"})
    wanted = [flag for flag in "lwc" if options.get(flag)] or ["l", "w", "c"]
    status = 0
    totals = {"l": 0, "w": 0, "c": 0}
    rows = []
    for name in operands or ["-"]:
        with reading(proc, name, f"wc: {name}") as handle:
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
    while chunk := handle.read(CHUNK):
        counts["c"] += len(chunk)
        counts["l"] += chunk.count(b"\n")
        if words:
            for byte in chunk:
                space = byte in b" \t\n\r\v\f"
                if not space and not in_word:
                    counts["w"] += 1
                in_word = not space
    return counts
