"""The on-disk encoding of every Raft record, each guarded by a CRC-32.

Checksum choice: `zlib.crc32` (CRC-32/ISO-HDLC) from the standard library. It detects
every burst error up to 32 bits and all but 2**-32 of other damage, which is what bit rot
and torn or misdirected writes need; it runs at several GB/s in CPython's zlib, far below
the cost of an fsync; and it adds no dependency. CRC-32C would be no stronger for this use.
LMDB itself never exposes a half-written transaction (copy-on-write B-tree, a new root is
published only by the commit), so a bad checksum is never an expected crash artefact.

Every checksum covers the record's identity as well as its payload (an entry's index, a
chunk's generation and number), so a record copied under another key is caught too. The
`seed` argument starts the CRC from another value: a region's records are seeded with the
CRC-32 of their region prefix (see `raft_keys`), so a record copied to another region fails
its check as well; the single-group layout uses seed 0, which is plain `zlib.crc32`.
Layouts (big-endian):

    entry        key u64 index        value crc u32 | term u64 | type u8 | data
    hard state   key b"hard_state"    value crc u32 | term u64 | vote u64 | commit u64
    first        key b"first"         value crc u32 | index u64 | term u64   (the dummy entry)
    snapshot     key b"snapshot"      value crc u32 | msgpack [index, term, conf state...,
                                                              generation, size, chunks, data crc]
    chunk        key b"chunk" | generation u64 | number u32    value crc u32 | data
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import msgpack

from cairn.raft.types import ConfState, Entry, EntryType, HardState, SnapshotMetadata
from cairn.storage.errors import CorruptLogError

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">IQB")
_ENTRY_IDENT = struct.Struct(">QQB")
_HARD_STATE = struct.Struct(">IQQQ")
_FIRST = struct.Struct(">IQQ")
_CHUNK_KEY = struct.Struct(">5sQI")

HARD_STATE_KEY = b"hard_state"
FIRST_KEY = b"first"
SNAPSHOT_KEY = b"snapshot"
CHUNK_PREFIX = b"chunk"

_TYPE_CODES: dict[EntryType, int] = {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}
_CODE_TYPES: dict[int, EntryType] = {code: t for t, code in _TYPE_CODES.items()}


def index_key(index: int) -> bytes:
    """The `raft_log` key of the entry at `index`: its big-endian u64, so keys sort by index."""
    return _U64.pack(index)


def key_index(key: bytes) -> int:
    """The inverse of `index_key`."""
    if len(key) != _U64.size:
        raise CorruptLogError(f"raft_log holds a key of {len(key)} bytes: {key!r}")
    value: int = _U64.unpack(key)[0]
    return value


def encode_entry(entry: Entry, seed: int = 0) -> bytes:
    """The `raft_log` value of `entry` (`seed`: the checksum's start, see `RaftKeys`)."""
    code = _TYPE_CODES[entry.type]
    ident = _ENTRY_IDENT.pack(entry.index, entry.term, code)
    crc = zlib.crc32(entry.data, zlib.crc32(ident, seed))
    return _ENTRY_HEAD.pack(crc, entry.term, code) + entry.data


def decode_entry(index: int, value: bytes, seed: int = 0) -> Entry:
    """The entry stored at `index`; `CorruptLogError` naming the index if it is damaged."""
    if len(value) < _ENTRY_HEAD.size:
        raise CorruptLogError(f"log entry {index} is truncated ({len(value)} bytes)")
    crc, term, code = _ENTRY_HEAD.unpack_from(value)
    data = value[_ENTRY_HEAD.size :]
    if zlib.crc32(data, zlib.crc32(_ENTRY_IDENT.pack(index, term, code), seed)) != crc:
        raise CorruptLogError(f"log entry {index} fails its checksum")
    entry_type = _CODE_TYPES.get(code)
    if entry_type is None:
        raise CorruptLogError(f"log entry {index} has unknown type code {code}")
    return Entry(term=term, index=index, type=entry_type, data=data)


def entry_term(index: int, value: bytes) -> int:
    """The term of a stored entry without checking its checksum (hot path; see `verify`)."""
    if len(value) < _ENTRY_HEAD.size:
        raise CorruptLogError(f"log entry {index} is truncated ({len(value)} bytes)")
    term: int = _U64.unpack_from(value, _U32.size)[0]
    return term


def encode_hard_state(hs: HardState, seed: int = 0) -> bytes:
    """The `raft_state` value of the hard state."""
    body = _HARD_STATE.pack(0, hs.term, hs.vote, hs.commit)[_U32.size :]
    return _U32.pack(zlib.crc32(body, seed)) + body


def decode_hard_state(value: bytes, seed: int = 0) -> HardState:
    """The stored hard state; `CorruptLogError` if it is damaged."""
    if len(value) != _HARD_STATE.size:
        raise CorruptLogError(f"hard state record has {len(value)} bytes, not {_HARD_STATE.size}")
    crc, term, vote, commit = _HARD_STATE.unpack(value)
    if zlib.crc32(value[_U32.size :], seed) != crc:
        raise CorruptLogError("hard state record fails its checksum")
    return HardState(term=term, vote=vote, commit=commit)


def encode_first(index: int, term: int, seed: int = 0) -> bytes:
    """The `raft_state` value of the dummy entry: the log's first index is `index + 1`."""
    body = _FIRST.pack(0, index, term)[_U32.size :]
    return _U32.pack(zlib.crc32(body, seed)) + body


def decode_first(value: bytes, seed: int = 0) -> tuple[int, int]:
    """The stored dummy entry (index, term); `CorruptLogError` if it is damaged."""
    if len(value) != _FIRST.size:
        raise CorruptLogError(f"first-index record has {len(value)} bytes, not {_FIRST.size}")
    crc, index, term = _FIRST.unpack(value)
    if zlib.crc32(value[_U32.size :], seed) != crc:
        raise CorruptLogError("first-index record fails its checksum")
    return index, term


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """Where the current snapshot stands, and how its data is stored in chunks.

    Invariant: chunks `0 .. chunks - 1` of `generation` hold exactly `size` bytes whose
    CRC-32 is `data_crc`.
    """

    metadata: SnapshotMetadata
    generation: int
    size: int
    chunks: int
    data_crc: int


def encode_snapshot(rec: SnapshotRecord, seed: int = 0) -> bytes:
    """The `raft_state` value of the snapshot record."""
    meta, cs = rec.metadata, rec.metadata.conf_state
    fields = [meta.index, meta.term, list(cs.voters), list(cs.learners)]
    fields += [list(cs.voters_outgoing), list(cs.learners_next), cs.auto_leave]
    fields += [rec.generation, rec.size, rec.chunks, rec.data_crc]
    body: bytes = msgpack.packb(fields)
    return _U32.pack(zlib.crc32(body, seed)) + body


def decode_snapshot(value: bytes, seed: int = 0) -> SnapshotRecord:
    """The stored snapshot record; `CorruptLogError` if it is damaged."""
    body = value[_U32.size :]
    if len(value) < _U32.size or zlib.crc32(body, seed) != _U32.unpack_from(value)[0]:
        raise CorruptLogError("snapshot metadata record fails its checksum")
    try:
        index, term, voters, learners, outgoing, nxt, auto, gen, size, chunks, crc = (
            msgpack.unpackb(body)
        )
    except (ValueError, TypeError) as exc:
        raise CorruptLogError(f"snapshot metadata record is malformed: {exc}") from exc
    cs = ConfState(tuple(voters), tuple(learners), tuple(outgoing), tuple(nxt), bool(auto))
    meta = SnapshotMetadata(index=index, term=term, conf_state=cs)
    return SnapshotRecord(meta, gen, size, chunks, crc)


def chunk_key(generation: int, number: int) -> bytes:
    """The `raft_state` key of one chunk of a snapshot's data."""
    return _CHUNK_KEY.pack(CHUNK_PREFIX, generation, number)


def chunk_key_fields(key: bytes) -> tuple[int, int] | None:
    """(generation, number) of a chunk key, or None if `key` is not a chunk key."""
    if len(key) != _CHUNK_KEY.size or not key.startswith(CHUNK_PREFIX):
        return None
    _, generation, number = _CHUNK_KEY.unpack(key)
    return generation, number


def encode_chunk(generation: int, number: int, data: bytes, seed: int = 0) -> bytes:
    """The value of one snapshot chunk."""
    return _U32.pack(zlib.crc32(data, zlib.crc32(chunk_key(generation, number), seed))) + data


def decode_chunk(generation: int, number: int, value: bytes, seed: int = 0) -> bytes:
    """The data of one snapshot chunk; `CorruptLogError` naming it if it is damaged."""
    data = value[_U32.size :]
    crc = zlib.crc32(data, zlib.crc32(chunk_key(generation, number), seed))
    if len(value) < _U32.size or crc != _U32.unpack_from(value)[0]:
        raise CorruptLogError(
            f"snapshot chunk {number} (generation {generation}) fails its checksum"
        )
    return data
