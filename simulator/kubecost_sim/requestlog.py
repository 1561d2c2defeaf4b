"""An append-only JSON-lines record of the HTTP requests the simulated services received.

Tests read it to prove what the product asked for (which repair windows, in what order).
``RequestLog(None)`` records nothing.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web


class RequestLog:
    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()  # lines from several threads or tasks never interleave

    def record(self, method: str, path: str, query: dict | str) -> None:
        if self.path is None:
            return
        entry = {"time": datetime.now(UTC).isoformat(), "method": method, "path": path, "query": query}
        line = json.dumps(entry) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        """aiohttp middleware: ``web.Application(middlewares=[request_log.middleware])``."""
        self.record(request.method, request.path, dict(request.query))
        return await handler(request)
