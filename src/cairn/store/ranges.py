"""A region's records in the shared keyspace: walking them, imaging them, replacing them.

Theory of operation. A region's machine owns, in the keyspace it shares with the node's
other regions (`cairn.store.layout`):

- its ``M`` records: one contiguous run, `Scope.meta_bounds`;
- the ``F`` records of its keys, and their ``G`` (graveyard) records, keyed the same
  way (`cairn.store.reclaim`). Within a slot, field keys order by key *length* first, so
  where a bound falls inside a slot that slot's fields are not contiguous: the walk covers
  every slot the scope touches and filters by range key, passing over a foreign key's
  fields with one seek;
- the ``L`` (lock) records of its keys, keyed like ``M`` records: one contiguous run;
- the ``S`` (transaction status) records of its keys, ``S | slot | key | start_ts``: the
  key has no length prefix, so where a bound falls inside a slot the walk covers the
  slots the scope touches and filters each record by its range key (the key before the
  last 8 bytes);
- its system records under ``Xr | region id`` (applied index, time, key counts).

A region's snapshot image is the concatenation of msgpack frames
``[1, region id, [key, value, key, value, ...], last]`` of about `chunk_bytes` each, in
the order F, G, L, M, S, X (the tags' order). This module is the one implementation of
the walks and of the image format, over any `Keyspace` (the simulator's `MemoryKeyspace`
as well as LMDB); installing in one batch is `KeyspaceImages`. `cairn.storage.region_data`
reuses the walks, the frames and `ImageReader` to snapshot, install and delete a region on
LMDB in bounded transactions, and a node plugs those in through `RangeImages`.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from typing import Protocol

import msgpack

from cairn.store.keyspace import Keyspace, KeyspaceReader, WriteBatch, write_batch
from cairn.store.layout import (
    FIELD_TAG,
    GARBAGE_TAG,
    LOCK_TAG,
    META_TAG,
    STATUS_TAG,
    STATUS_TS_LEN,
    prefix_end,
    status_range_key,
)
from cairn.store.scope import Scope

SNAPSHOT_FORMAT = 1
DEFAULT_CHUNK_BYTES = 1 << 20
PAGE = 256
"""Records read per scan call while walking a scope."""

_U32 = struct.Struct(">I")
_FIELD_HEAD = 1 + 2 + _U32.size


class ImageError(ValueError):
    """A region image is malformed, truncated, of another region, or holds a record
    outside the region."""


class RangeImages(Protocol):
    """How a region's machine takes and installs images of its scope."""

    def snapshot(self, scope: Scope) -> bytes:
        """The scope's records (data and system records) as one image."""
        ...

    def restore(self, scope: Scope, data: bytes) -> None:
        """Replace the scope's records by an image (empty data: no records at all)."""
        ...


# -- walking -----------------------------------------------------------------------------


def field_range_key(key: bytes) -> tuple[bytes, int]:
    """(range key, length of the key's F prefix) of an F record's internal key."""
    if len(key) < _FIELD_HEAD:
        raise ImageError(f"field record key {key!r} is truncated")
    (length,) = _U32.unpack_from(key, 3)
    head = _FIELD_HEAD + length
    if len(key) < head:
        raise ImageError(f"field record key {key!r} is shorter than its key length")
    return key[1:3] + key[_FIELD_HEAD:head], head


def owns(scope: Scope, key: bytes) -> bool:
    """Whether internal record `key` belongs to region scope `scope`."""
    if key.startswith(META_TAG):
        return scope.contains(key[1:])
    if key.startswith(FIELD_TAG) or key.startswith(GARBAGE_TAG):
        return scope.contains(field_range_key(key)[0])
    if key.startswith(LOCK_TAG):
        return scope.contains(key[1:])
    if key.startswith(STATUS_TAG):
        if len(key) < 3 + STATUS_TS_LEN:
            raise ImageError(f"status record key {key!r} is truncated")
        return scope.contains(status_range_key(key))
    bounds = scope.system_bounds()
    return bounds is not None and bounds[0] <= key < bounds[1]


def iter_meta(reader: KeyspaceReader, scope: Scope) -> Iterator[tuple[bytes, bytes]]:
    """The scope's M records, in key order."""
    yield from _iter_span(reader, *scope.meta_bounds())


def iter_fields(
    reader: KeyspaceReader, scope: Scope, tag: bytes = FIELD_TAG
) -> Iterator[tuple[bytes, bytes]]:
    """The F records of the scope's keys (or its G records, `tag` GARBAGE_TAG), in key
    order (module docstring)."""
    pos, hi = scope.field_bounds(tag)
    while rows := reader.scan(pos, hi, PAGE):
        skip = b""
        for key, value in rows:
            if key < skip:
                continue
            rkey, head = field_range_key(key)
            if scope.contains(rkey):
                yield key, value
            else:
                after = prefix_end(key[:head])
                assert after is not None
                skip = after
        if len(rows) < PAGE:
            return
        pos = max(skip, rows[-1][0] + b"\x00")


def iter_locks(
    reader: KeyspaceReader, scope: Scope, position: bytes = b""
) -> Iterator[tuple[bytes, bytes]]:
    """The L (lock) records of the scope's keys, in key order (from internal key
    `position` on, when given)."""
    hi = LOCK_TAG + scope.end if scope.end else META_TAG  # "M": just past every L record
    yield from _iter_span(reader, max(LOCK_TAG + scope.start, position), hi)


def iter_statuses(reader: KeyspaceReader, scope: Scope) -> Iterator[tuple[bytes, bytes]]:
    """The S (transaction status) records of the scope's keys, in key order (module
    docstring: filtered by range key within the slots the scope touches)."""
    for key, value in _iter_span(reader, *scope.field_bounds(STATUS_TAG)):
        if len(key) >= 3 + STATUS_TS_LEN and scope.contains(status_range_key(key)):
            yield key, value


def iter_system(reader: KeyspaceReader, scope: Scope) -> Iterator[tuple[bytes, bytes]]:
    """The region's system records (none for the whole keyspace's scope)."""
    bounds = scope.system_bounds()
    if bounds is not None:
        yield from _iter_span(reader, *bounds)


def iter_scope(reader: KeyspaceReader, scope: Scope) -> Iterator[tuple[bytes, bytes]]:
    """Every record of the scope, in key order (F < G < L < M < S < X)."""
    yield from iter_fields(reader, scope)
    yield from iter_fields(reader, scope, GARBAGE_TAG)
    yield from iter_locks(reader, scope)
    yield from iter_meta(reader, scope)
    yield from iter_statuses(reader, scope)
    yield from iter_system(reader, scope)


def _iter_span(reader: KeyspaceReader, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = lo
    while rows := reader.scan(pos, hi, PAGE):
        yield from rows
        if len(rows) < PAGE:
            return
        pos = rows[-1][0] + b"\x00"


# -- images ------------------------------------------------------------------------------


def image_frames(
    reader: KeyspaceReader, scope: Scope, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """The region's records as image frames of about `chunk_bytes` (module docstring)."""
    region_id = _region_id(scope)
    flat: list[bytes] = []
    size = 0
    for key, value in iter_scope(reader, scope):
        flat += (key, value)
        size += len(key) + len(value)
        if size >= chunk_bytes:
            yield _frame(region_id, flat, last=False)
            flat, size = [], 0
    yield _frame(region_id, flat, last=True)


def _frame(region_id: int, flat: list[bytes], *, last: bool) -> bytes:
    return bytes(msgpack.packb([SNAPSHOT_FORMAT, region_id, flat, last], use_bin_type=True))


def _region_id(scope: Scope) -> int:
    if scope.region_id is None:
        raise ValueError("the whole keyspace has no region image")
    return scope.region_id


def delete_records(batch: WriteBatch, scope: Scope, limit: int | None = None) -> int:
    """Delete the scope's records (data and system records; the first `limit` of them in
    key order, all when None) in `batch`; how many."""
    doomed = [key for key, _ in itertools.islice(iter_scope(batch, scope), limit)]
    for key in doomed:
        batch.delete(key)
    return len(doomed)


def load_image(batch: WriteBatch, scope: Scope, data: bytes) -> int:
    """Write the records of image `data` in `batch`; how many. `ImageError` when it is
    malformed, truncated, of another region or holds a foreign record."""
    reader = ImageReader(scope)
    loaded = 0
    for key, value in reader.feed(data):
        batch.put(key, value)
        loaded += 1
    reader.close()
    return loaded


class ImageReader:
    """Decodes and checks a region image fed in pieces split anywhere.

    Both ways of installing an image read it through this class: `load_image` in one batch
    and the storage layer in bounded transactions, so they refuse exactly the same images.
    """

    def __init__(self, scope: Scope) -> None:
        self.region_id = _region_id(scope)
        self.finished = False
        """Whether the last frame has been read."""
        self._scope = scope
        self._unpacker = msgpack.Unpacker(raw=False)

    def feed(self, piece: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The records of the frames `piece` completes, each checked before it is yielded
        (`ImageError`: a malformed frame, another region's, a frame after the last, a record
        outside the region)."""
        self._unpacker.feed(piece)
        for frame in self._unpacker:
            if self.finished:
                raise ImageError(f"region {self.region_id}: image data after its last frame")
            flat, last = _check_frame(self.region_id, frame)
            for i in range(0, len(flat), 2):
                yield self._check_record(flat[i], flat[i + 1])
            self.finished = last

    def close(self) -> None:
        """`ImageError` unless the image's last frame was read."""
        if not self.finished:
            raise ImageError(f"region {self.region_id}: image ends before its last frame")

    def _check_record(self, key: object, value: object) -> tuple[bytes, bytes]:
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise ImageError(f"region {self.region_id}: an image record is not bytes")
        if not owns(self._scope, key):
            raise ImageError(
                f"region {self.region_id}: image record {key!r} lies outside the region"
            )
        return key, value


def _check_frame(region_id: int, frame: object) -> tuple[list[object], bool]:
    if not (isinstance(frame, list) and len(frame) == 4):
        raise ImageError(f"region {region_id}: malformed image frame")
    fmt, owner, flat, last = frame
    if fmt != SNAPSHOT_FORMAT or owner != region_id:
        raise ImageError(f"region {region_id}: image frame of format {fmt!r}, region {owner!r}")
    if not isinstance(flat, list) or len(flat) % 2 or not isinstance(last, bool):
        raise ImageError(f"region {region_id}: malformed image frame")
    return flat, last


class KeyspaceImages:
    """`RangeImages` over any `Keyspace`: an image in memory, installed in one batch."""

    def __init__(self, keyspace: Keyspace, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.keyspace = keyspace
        self.chunk_bytes = chunk_bytes

    def snapshot(self, scope: Scope) -> bytes:
        """The scope's records as one image (its frames concatenated)."""
        return b"".join(image_frames(self.keyspace, scope, self.chunk_bytes))

    def restore(self, scope: Scope, data: bytes) -> None:
        """Replace the scope's records by image `data` atomically (nothing changes when
        the image is refused)."""
        with write_batch(self.keyspace) as batch:
            delete_records(batch, scope)
            if data:
                load_image(batch, scope, data)
