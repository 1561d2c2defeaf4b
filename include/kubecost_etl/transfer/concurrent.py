"""Overlapping the stages of a transfer with bounded queues: read ahead of the consumer in a thread, and
compress + upload several files at once while the next ones are being read.

Memory stays bounded: each queue holds at most a few pieces, and at most ``workers`` files are in
flight. zstd and hashlib release the GIL on large buffers and sockets release it while waiting, so
the threads really run on both cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

_POLL_S = 0.1  # how often a blocked producer looks whether its consumer has gone away
_END = object()


class Abandoned(Exception):
    """The consumer stopped reading: the producer thread gives up."""


def prefetch(items: Iterable[bytes], depth: int = 8, name: str = "prefetch") -> Iterator[bytes]:
    """Yield ``items`` produced by a thread up to ``depth`` items ahead (e.g. exec frames read while
    the previous ones are parsed). Errors of the producer are raised here, in order; closing this
    generator stops the producer."""
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                pending.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise Abandoned

    def produce() -> None:
        try:
            for item in items:
                put(item)
            put(_END)
        except Abandoned:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            try:
                put(_Failure(exc))
            except Abandoned:
                pass

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class FileFeed:
    """The pieces of one file, handed from the reader to its upload worker through a bounded queue."""

    def __init__(self, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self.future: Future | None = None
        self.ended = False

    def put(self, piece) -> None:
        """Blocks while the queue is full; raises the worker's error if the worker has failed."""
        while True:
            try:
                self._queue.put(piece, timeout=_POLL_S)
                return
            except queue.Full:
                if self.future is not None and self.future.done():
                    self.future.result()  # raises the worker's error
                    raise RuntimeError("upload finished before its input ended") from None

    def end(self, error: BaseException | None = None) -> None:
        """No more pieces: the file is complete, or (``error``) the worker must abandon the upload."""
        self.ended = True
        self.put(_Failure(error) if error is not None else _END)

    def pieces(self) -> Iterator[bytes]:
        """The worker's side: every piece, then the end; an error passed to ``end`` is raised here."""
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item


class UploadPool:
    """At most ``workers`` files compressed and uploaded at once, each fed through a bounded queue.

    ``start(job)`` blocks while every worker is busy (so memory stays bounded), then returns the
    ``FileFeed`` to write the file's pieces into; ``job(feed)`` runs in a worker and its result or
    error lands on ``feed.future``.
    """

    def __init__(self, workers: int, depth: int = 4):
        self._slots = threading.BoundedSemaphore(workers)
        self._depth = depth
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload")
        self._feeds: list[FileFeed] = []

    def start(self, job: Callable[[FileFeed], object]) -> FileFeed:
        self._slots.acquire()
        feed = FileFeed(self._depth)

        def run():
            try:
                return job(feed)
            finally:
                self._slots.release()

        feed.future = self._executor.submit(run)
        self._feeds.append(feed)
        return feed

    def wait(self) -> None:
        """Wait for every upload started (their results and errors stay on their futures)."""
        for feed in self._feeds:
            feed.future.exception()

    def close(self) -> None:
        """Abandon every upload whose input never ended (the reader failed), then wait for the workers:
        an abandoned upload raises inside the store's put, which aborts it."""
        for feed in self._feeds:
            if not feed.ended and not feed.future.done():
                try:
                    feed.end(Abandoned("the reader stopped before this file ended"))
                except Exception:  # the worker failed meanwhile: nothing left to abandon
                    pass
        self._executor.shutdown(wait=True)

    def __enter__(self) -> UploadPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
