"""Reading tar streams that arrive as chunks (from an exec), one member at a time, in bounded memory."""

from __future__ import annotations

import io
from collections.abc import Iterator


class ChunkReader(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks, so ``tarfile`` can parse a stream."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.bytes_read += n
        return n

    def drain(self) -> int:
        """Consume the rest of the stream (tar's end padding), so the producer reaches its status."""
        drained = len(self._buffer)
        self._buffer = memoryview(b"")
        for chunk in self._chunks:
            drained += len(chunk)
        self.bytes_read += drained
        return drained


def read_in_pieces(fileobj, piece: int = 1 << 20) -> Iterator[bytes]:
    while True:
        data = fileobj.read(piece)
        if not data:
            return
        yield data
