"""`SnapshotWriter`: receives a snapshot's data in pieces and installs it in a log store.

A leader streams a large snapshot in pieces; storing each piece as it arrives keeps the
follower's memory bounded by one piece. The install itself is `LmdbLogStore.install_streamed`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from cairn.raft.types import HardState, SnapshotMetadata

if TYPE_CHECKING:
    from cairn.storage.log_store import LmdbLogStore


class SnapshotWriter:
    """Receives a snapshot's data in pieces (from a leader's stream) and installs it.

    Each `write` goes to disk in its own unsynced transaction, so memory stays bounded by
    one piece; `finish` installs the snapshot atomically (as a `LogBatch` snapshot would)
    and syncs. Pieces of a stream that never finishes are deleted at the next open.
    """

    def __init__(self, store: LmdbLogStore, generation: int) -> None:
        self._store = store
        self._generation = generation
        self._chunks = 0
        self._size = 0
        self._crc = 0
        self._done = False

    def write(self, data: bytes) -> None:
        """Append one piece of the snapshot's data (empty pieces are ignored)."""
        if self._done:
            raise ValueError("snapshot writer already finished")
        if not data:
            return
        with self._store.env.write() as wtx:
            keys = self._store.keys
            key = keys.chunk_key(self._generation, self._chunks)
            value = keys.encode_chunk(self._generation, self._chunks, data)
            wtx.txn.put(key, value, db=keys.state_db)
        self._chunks += 1
        self._size += len(data)
        self._crc = zlib.crc32(data, self._crc)

    def finish(
        self, metadata: SnapshotMetadata, hard_state: HardState | None = None, sync: bool = True
    ) -> bool:
        """Install the received snapshot; False (and nothing installed) if it is stale."""
        if self._done:
            raise ValueError("snapshot writer already finished")
        self._done = True
        return self._store.install_streamed(
            self._generation, metadata, self._size, self._chunks, self._crc, hard_state, sync
        )

    def abort(self) -> None:
        """Discard the pieces received so far."""
        if self._done:
            return
        self._done = True
        with self._store.env.write() as wtx:
            self._store._delete_generation(wtx.txn, self._generation)
