"""`CountingKeyspace`: a `MemoryKeyspace` that counts the reads made outside write
batches, so a test can tell that a background look read nothing (an apply reads through
its batch, which is not counted)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from cairn.store.keyspace import MemoryKeyspace, WriteBatch


class CountingKeyspace:
    """A `Keyspace` over a `MemoryKeyspace`; `reads` counts get, scan and rscan calls."""

    def __init__(self) -> None:
        self.inner = MemoryKeyspace()
        self.durable = self.inner.durable
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get(key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        self.reads += 1
        return self.inner.scan(start, end, limit)

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        self.reads += 1
        return self.inner.rscan(start, end, limit)

    def count(self) -> int:
        return self.inner.count()

    def begin(self) -> WriteBatch:
        return self.inner.begin()

    def transaction(self) -> AbstractContextManager[None]:
        return self.inner.transaction()
