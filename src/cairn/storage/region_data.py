"""A region's state machine data in the node's shared keyspace: scan, snapshot, install, delete.

Theory of operation. All regions of a node keep their data in the one `kv` database, in the
layout of `cairn.store.layout`: ``M | slot | key`` (a Redis key's metadata) and
``F | slot | len(key) u32 | key | field`` (its fields). A region owns the range keys
(``slot | key``) in ``[start, end)``, so its records are:

- M: one contiguous run, ``[b"M" + start, b"M" + end)``;
- F: the F records whose (slot, key) lies in the range. Within a slot F keys are ordered
  by key *length* first, so when a boundary falls inside a slot, that slot's in-range
  fields are not contiguous. The walk covers the slots the range touches and filters by
  range key; an out-of-range key is passed over with one seek past all its fields, so the
  waste is one seek per foreign key of the (at most two) boundary slots;
- X: the region's own system records ``b"Xr" | region id u64 | name`` (applied index,
  applied time), replacing the single group's ``X applied`` / ``X now``.

Regions are disjoint, so a split needs no data copy (the two halves already own their
records) and a merge none either; only removal and snapshot installation move data.

A snapshot of a region is the concatenation of msgpack frames
``[format, region id, [key, value, key, value, ...], last]``, each about `chunk_bytes`,
read from ONE read transaction (a consistent view at one applied index) and produced lazily,
so memory stays bounded by a frame. Installing deletes the range (and the region's X
records), then loads frames from any split of the bytes (a streaming unpacker), refusing a
record outside the region and a stream without its last frame. Deleting and loading run in
transactions of at most `txn_records` records, so neither pins the writer for long nor
builds a huge transaction; crash safety comes from the caller's region state (`APPLYING`,
or a tombstone's `pending_delete`), which is cleared only after the last step: redoing
the whole operation after a crash is always correct.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack

from cairn.storage.errors import RegionDataError
from cairn.storage.failpoints import fail_point
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.storage.raft_keys import next_prefix
from cairn.store.keyspace import KeyspaceReader

META_TAG = b"M"
FIELD_TAG = b"F"
REGION_SYSTEM_TAG = b"Xr"
"""The prefix of every region-keyed system record (distinct from the single group's X keys)."""

SNAPSHOT_FORMAT = 1
DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_TXN_RECORDS = 4096
PAGE = 256
"""Records read per scan call while walking a range."""

FP_DELETE_STEP = "storage.region.delete_step"
"""Failure point reached after each committed transaction of a range deletion."""
FP_INSTALL_STEP = "storage.region.install_step"
"""Failure point reached after each committed transaction of a range install."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_FIELD_HEAD = 1 + 2 + _U32.size


def system_prefix(region_id: int) -> bytes:
    """The common prefix of region `region_id`'s system records."""
    return REGION_SYSTEM_TAG + _U64.pack(region_id)


def applied_key(region_id: int) -> bytes:
    """The keyspace key of region `region_id`'s applied index (u64, as `X applied`)."""
    return system_prefix(region_id) + b"applied"


def now_key(region_id: int) -> bytes:
    """The keyspace key of region `region_id`'s largest applied now_ms (as `X now`)."""
    return system_prefix(region_id) + b"now"


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Range keys ``[start, end)`` (`end == b""`: no upper bound), as a `Region` has them."""

    start: bytes = b""
    end: bytes = b""

    def __post_init__(self) -> None:
        if self.end and self.start >= self.end:
            raise ValueError(f"empty key range [{self.start!r}, {self.end!r})")

    def contains(self, rkey: bytes) -> bool:
        """Whether range key `rkey` lies in the range."""
        return self.start <= rkey and (not self.end or rkey < self.end)

    def meta_bounds(self) -> tuple[bytes, bytes]:
        """The M-record key interval of the range."""
        return META_TAG + self.start, META_TAG + self.end if self.end else _after(META_TAG)

    def field_bounds(self) -> tuple[bytes, bytes]:
        """An F-record key interval covering every slot the range touches (a superset)."""
        lo = FIELD_TAG + self.start[:2]
        if not self.end:
            return lo, _after(FIELD_TAG)
        if len(self.end) == 2:
            return lo, FIELD_TAG + self.end
        return lo, _after(FIELD_TAG + self.end[:2])


def _after(prefix: bytes) -> bytes:
    end = next_prefix(prefix)
    assert end is not None  # every prefix here starts with an ASCII tag
    return end


def field_range_key(key: bytes) -> tuple[bytes, int]:
    """(range key, length of the key's F prefix) of an F record's key."""
    if len(key) < _FIELD_HEAD:
        raise RegionDataError(f"field record key {key!r} is truncated")
    (length,) = _U32.unpack_from(key, 3)
    head = _FIELD_HEAD + length
    if len(key) < head:
        raise RegionDataError(f"field record key {key!r} is shorter than its key length")
    return key[1:3] + key[_FIELD_HEAD:head], head


def owns(region_id: int, rng: KeyRange, key: bytes) -> bool:
    """Whether keyspace record `key` belongs to region `region_id` covering `rng`."""
    if key.startswith(META_TAG):
        return rng.contains(key[1:])
    if key.startswith(FIELD_TAG):
        return rng.contains(field_range_key(key)[0])
    return key.startswith(system_prefix(region_id))


# -- walking a range -------------------------------------------------------------------------


def iter_meta(reader: KeyspaceReader, rng: KeyRange) -> Iterator[tuple[bytes, bytes]]:
    """The M records of `rng`, in key order."""
    lo, hi = rng.meta_bounds()
    yield from _iter_span(reader, lo, hi)


def iter_fields(reader: KeyspaceReader, rng: KeyRange) -> Iterator[tuple[bytes, bytes]]:
    """The F records of the keys in `rng`, in key order (see the module docstring)."""
    pos, hi = rng.field_bounds()
    while rows := reader.scan(pos, hi, PAGE):
        skip = b""
        for key, value in rows:
            if key < skip:
                continue
            rkey, head = field_range_key(key)
            if rng.contains(rkey):
                yield key, value
            else:
                skip = _after(key[:head])
        pos = max(skip, rows[-1][0] + b"\x00")
        if len(rows) < PAGE:
            return


def iter_system(reader: KeyspaceReader, region_id: int) -> Iterator[tuple[bytes, bytes]]:
    """Region `region_id`'s system records."""
    prefix = system_prefix(region_id)
    yield from _iter_span(reader, prefix, _after(prefix))


def iter_region(
    reader: KeyspaceReader, region_id: int, rng: KeyRange
) -> Iterator[tuple[bytes, bytes]]:
    """Every record of the region, in key order (F < M < X)."""
    yield from iter_fields(reader, rng)
    yield from iter_meta(reader, rng)
    yield from iter_system(reader, region_id)


def _iter_span(reader: KeyspaceReader, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = lo
    while rows := reader.scan(pos, hi, PAGE):
        yield from rows
        if len(rows) < PAGE:
            return
        pos = rows[-1][0] + b"\x00"


def count_region(space: LmdbKeyspace, region_id: int, rng: KeyRange) -> int:
    """How many records the region has (a walk: for tests, checks and size estimates)."""
    with space.view() as view:
        return sum(1 for _ in iter_region(view, region_id, rng))


# -- snapshot, delete, install -------------------------------------------------------------


def range_snapshot(
    space: LmdbKeyspace,
    region_id: int,
    rng: KeyRange,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[bytes]:
    """The region's data as snapshot frames of about `chunk_bytes` (module docstring).

    The frames come from one read transaction, held until the iterator is exhausted or
    closed: consume it promptly (or store it, as `SnapshotWriter` does), since a held
    reader keeps LMDB from reusing the pages written since.
    """
    with space.view() as view:
        flat: list[bytes] = []
        size = 0
        for key, value in iter_region(view, region_id, rng):
            flat += (key, value)
            size += len(key) + len(value)
            if size >= chunk_bytes:
                yield _frame(region_id, flat, last=False)
                flat, size = [], 0
        yield _frame(region_id, flat, last=True)


def _frame(region_id: int, flat: list[bytes], *, last: bool) -> bytes:
    return bytes(msgpack.packb([SNAPSHOT_FORMAT, region_id, flat, last], use_bin_type=True))


def delete_range(
    space: LmdbKeyspace,
    region_id: int | None,
    rng: KeyRange,
    *,
    txn_records: int = DEFAULT_TXN_RECORDS,
) -> int:
    """Delete the M and F records of `rng` (and region `region_id`'s system records unless
    it is None), at most `txn_records` per transaction; how many were deleted."""
    total = 0
    while True:
        batch = space.begin()
        try:
            walk: Iterator[tuple[bytes, bytes]]
            if region_id is None:
                walk = itertools.chain(iter_fields(batch, rng), iter_meta(batch, rng))
            else:
                walk = iter_region(batch, region_id, rng)
            doomed = [key for key, _ in itertools.islice(walk, txn_records)]
            for key in doomed:
                batch.delete(key)
        except BaseException:
            batch.abort()
            raise
        batch.commit()
        fail_point(FP_DELETE_STEP)
        total += len(doomed)
        if len(doomed) < txn_records:
            return total


def install_range(
    space: LmdbKeyspace,
    region_id: int,
    rng: KeyRange,
    data: Iterable[bytes],
    *,
    txn_records: int = DEFAULT_TXN_RECORDS,
) -> int:
    """Replace the region's data by a `range_snapshot` (in pieces split anywhere).

    Deletes the range first, then loads; how many records were loaded. `RegionDataError`
    if the data is malformed, truncated, of another region or holds a foreign record (what
    was loaded so far stays: the caller's `APPLYING` state makes it redo the install).
    """
    delete_range(space, region_id, rng, txn_records=txn_records)
    loader = _Loader(space, region_id, rng, txn_records)
    unpacker = msgpack.Unpacker(raw=False)
    for piece in data:
        unpacker.feed(piece)
        for frame in unpacker:
            loader.load(frame)
    loader.flush()
    if not loader.finished:
        raise RegionDataError(f"region {region_id}: snapshot data ends before its last frame")
    return loader.loaded


class _Loader:
    """Writes snapshot frames into the keyspace in transactions of bounded size."""

    def __init__(self, space: LmdbKeyspace, region_id: int, rng: KeyRange, limit: int) -> None:
        self._space = space
        self._region_id = region_id
        self._rng = rng
        self._limit = limit
        self._pending: list[tuple[bytes, bytes]] = []
        self.loaded = 0
        self.finished = False

    def load(self, frame: object) -> None:
        """Check and stage one decoded frame."""
        if self.finished:
            raise RegionDataError(f"region {self._region_id}: snapshot data after its last frame")
        flat, last = self._check(frame)
        for i in range(0, len(flat), 2):
            key, value = flat[i], flat[i + 1]
            if not isinstance(key, bytes) or not isinstance(value, bytes):
                raise RegionDataError(f"region {self._region_id}: a snapshot record is not bytes")
            if not owns(self._region_id, self._rng, key):
                raise RegionDataError(
                    f"region {self._region_id}: snapshot record {key!r} lies outside the region"
                )
            self._pending.append((key, value))
            if len(self._pending) >= self._limit:
                self.flush()
        self.finished = last

    def _check(self, frame: object) -> tuple[list[object], bool]:
        if not (isinstance(frame, list) and len(frame) == 4):
            raise RegionDataError(f"region {self._region_id}: malformed snapshot frame")
        fmt, region_id, flat, last = frame
        if fmt != SNAPSHOT_FORMAT or region_id != self._region_id:
            raise RegionDataError(
                f"region {self._region_id}: snapshot frame of format {fmt!r}, region {region_id!r}"
            )
        if not isinstance(flat, list) or len(flat) % 2 or not isinstance(last, bool):
            raise RegionDataError(f"region {self._region_id}: malformed snapshot frame")
        return flat, last

    def flush(self) -> None:
        """Commit the staged records in one transaction."""
        if not self._pending:
            return
        batch = self._space.begin()
        try:
            for key, value in self._pending:
                batch.put(key, value)
        except BaseException:
            batch.abort()
            raise
        batch.commit()
        fail_point(FP_INSTALL_STEP)
        self.loaded += len(self._pending)
        self._pending = []
