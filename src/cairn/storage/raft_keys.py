"""`RaftKeys`: where one Raft group's records live in a node's environment, and their codecs.

Theory of operation. A node's first layout held ONE Raft group: its entries are the whole
`raft_log` database (key = big-endian u64 index) and its state records the whole
`raft_state` database (`hard_state`, `first`, `snapshot`, `chunk...`). A multi-raft node
hosts many groups (regions) in the same environment: each region's entries live in
`region_log` and its state records in `region_raft`, every key prefixed by the region id as
a big-endian u64. A region's records are therefore one contiguous key range per database,
walked with a cursor from `prefix` up to (not including) the next region's prefix, and a
region is dropped by deleting that range.

`LmdbLogStore` reads and writes only through a `RaftKeys`, so the same code serves both
layouts: `RaftKeys.single(env)` (empty prefix, the original keys byte for byte) and
`RaftKeys.region(env, region_id)`.

Checksums are seeded with the CRC-32 of the prefix, so a record copied (or misdirected)
under another region's key fails its check. The empty prefix gives seed 0, which leaves
the single-group checksums unchanged.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import lmdb

from cairn.raft.types import Entry, HardState
from cairn.storage import records
from cairn.storage.errors import CorruptLogError
from cairn.storage.lmdb_env import LmdbEnv
from cairn.storage.records import SnapshotRecord
from cairn.store.layout import prefix_end

_U64 = struct.Struct(">Q")
_INDEX = struct.Struct(">Q")


def region_prefix(region_id: int) -> bytes:
    """The key prefix of every Raft record of region `region_id` (big-endian u64)."""
    return _U64.pack(region_id)


def prefix_region(key: bytes) -> int:
    """The region id a prefixed key belongs to (its first 8 bytes)."""
    if len(key) < _U64.size:
        raise CorruptLogError(f"a region record has a key of {len(key)} bytes: {key!r}")
    region_id: int = _U64.unpack_from(key)[0]
    return region_id


@dataclass(frozen=True, slots=True)
class RaftKeys:
    """The databases, key prefix and checksum seed of one Raft group's records.

    Invariant: `seed == zlib.crc32(prefix)`, and `end` is the first key past the prefix.
    """

    log_db: lmdb._Database
    state_db: lmdb._Database
    prefix: bytes
    seed: int
    end: bytes | None
    region_id: int | None
    """The region these keys belong to (None for the single-group layout)."""

    @classmethod
    def single(cls, env: LmdbEnv) -> RaftKeys:
        """The original layout: the whole `raft_log` and `raft_state` databases."""
        return cls(env.log_db, env.state_db, b"", 0, None, None)

    @classmethod
    def region(cls, env: LmdbEnv, region_id: int) -> RaftKeys:
        """Region `region_id`'s records in `region_log` and `region_raft`."""
        prefix = region_prefix(region_id)
        return cls(
            env.region_log_db,
            env.region_raft_db,
            prefix,
            zlib.crc32(prefix),
            prefix_end(prefix),
            region_id,
        )

    def describe(self, message: str) -> str:
        """`message` naming the region, so a damage report says whose record it is."""
        if self.region_id is None or message.startswith(f"region {self.region_id}: "):
            return message
        return f"region {self.region_id}: {message}"

    # -- log keys ------------------------------------------------------------------------

    def index_key(self, index: int) -> bytes:
        """The log key of the entry at `index`."""
        return self.prefix + _INDEX.pack(index)

    def key_index(self, key: bytes) -> int:
        """The index of a log key of this group; `CorruptLogError` for a foreign key."""
        if not self.prefix:
            return records.key_index(key)
        if len(key) != len(self.prefix) + _INDEX.size or not key.startswith(self.prefix):
            raise CorruptLogError(self.describe(f"log key {key!r} is not one of this region's"))
        index: int = _INDEX.unpack_from(key, len(self.prefix))[0]
        return index

    def owns(self, key: bytes) -> bool:
        """Whether a cursor key (b"" past the end) is one of this group's."""
        return bool(key) and key.startswith(self.prefix)

    def log_records(self, cur: lmdb.Cursor[bytes]) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of this group's log, in index order."""
        if not cur.set_range(self.prefix):
            return
        for key, value in cur.iternext():
            if not key.startswith(self.prefix):
                return
            yield key, value

    def last_log_key(self, cur: lmdb.Cursor[bytes]) -> bytes | None:
        """The key of this group's last entry, or None when its log is empty."""
        after = self.end is not None and cur.set_range(self.end)
        found = cur.prev() if after else cur.last()
        key = cur.key() if found else b""
        return key if self.owns(key) else None

    def clear_log(self, txn: lmdb.Transaction[bytes]) -> None:
        """Delete every entry of this group."""
        if not self.prefix:
            txn.drop(self.log_db, delete=False)
            return
        self.clear(txn, self.log_db)

    def clear(self, txn: lmdb.Transaction[bytes], db: lmdb._Database) -> int:
        """Delete every record of this group in `db` (prefixed layouts only); how many."""
        if not self.prefix:
            raise ValueError("the single-group layout has no prefix to clear by")
        count = 0
        with txn.cursor(db=db) as cur:
            present = cur.set_range(self.prefix)
            while present and cur.key().startswith(self.prefix):
                present = cur.delete()
                count += 1
        return count

    # -- state keys ----------------------------------------------------------------------

    @property
    def hard_state_key(self) -> bytes:
        """The key of the hard state record."""
        return self.prefix + records.HARD_STATE_KEY

    @property
    def first_key(self) -> bytes:
        """The key of the dummy-entry ("first") record."""
        return self.prefix + records.FIRST_KEY

    @property
    def snapshot_key(self) -> bytes:
        """The key of the snapshot record."""
        return self.prefix + records.SNAPSHOT_KEY

    @property
    def chunk_prefix(self) -> bytes:
        """The common prefix of every snapshot chunk key of this group."""
        return self.prefix + records.CHUNK_PREFIX

    def chunk_key(self, generation: int, number: int) -> bytes:
        """The key of one chunk of a snapshot's data."""
        return self.prefix + records.chunk_key(generation, number)

    def chunk_key_fields(self, key: bytes) -> tuple[int, int] | None:
        """(generation, number) of one of this group's chunk keys, else None."""
        if not key.startswith(self.prefix):
            return None
        return records.chunk_key_fields(key[len(self.prefix) :])

    # -- codecs (seeded) -----------------------------------------------------------------

    def encode_entry(self, entry: Entry) -> bytes:
        """See `records.encode_entry`."""
        return records.encode_entry(entry, self.seed)

    def decode_entry(self, index: int, value: bytes) -> Entry:
        """See `records.decode_entry`."""
        return records.decode_entry(index, value, self.seed)

    def encode_hard_state(self, hs: HardState) -> bytes:
        """See `records.encode_hard_state`."""
        return records.encode_hard_state(hs, self.seed)

    def decode_hard_state(self, value: bytes) -> HardState:
        """See `records.decode_hard_state`."""
        return records.decode_hard_state(value, self.seed)

    def encode_first(self, index: int, term: int) -> bytes:
        """See `records.encode_first`."""
        return records.encode_first(index, term, self.seed)

    def decode_first(self, value: bytes) -> tuple[int, int]:
        """See `records.decode_first`."""
        return records.decode_first(value, self.seed)

    def encode_snapshot(self, rec: SnapshotRecord) -> bytes:
        """See `records.encode_snapshot`."""
        return records.encode_snapshot(rec, self.seed)

    def decode_snapshot(self, value: bytes) -> SnapshotRecord:
        """See `records.decode_snapshot`."""
        return records.decode_snapshot(value, self.seed)

    def encode_chunk(self, generation: int, number: int, data: bytes) -> bytes:
        """See `records.encode_chunk`."""
        return records.encode_chunk(generation, number, data, self.seed)

    def decode_chunk(self, generation: int, number: int, value: bytes) -> bytes:
        """See `records.decode_chunk`."""
        return records.decode_chunk(generation, number, value, self.seed)
