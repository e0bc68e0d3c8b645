"""A region's state machine data in the node's shared keyspace: snapshot, install, delete.

Theory of operation. All regions of a node keep their data in the one `kv` database, in the
layout of `cairn.store.layout`; which records a region owns (its M run, the F records of its
keys, its ``Xr | region id`` system records) and how an image of them is framed are defined
once, by `cairn.store.scope.Scope` and `cairn.store.ranges`. This module adds what a node on
LMDB needs on top: bounded transactions and crash safety.

Regions are disjoint, so a split needs no data copy (the two halves already own their
records) and a merge none either; only removal and snapshot installation move data.

A snapshot of a region is its image (`cairn.store.ranges.image_frames`), read from ONE read
transaction (a consistent view at one applied index) and produced lazily, so memory stays
bounded by a frame. Installing deletes the range (and the region's X records), then loads
frames from any split of the bytes (`ImageReader`), refusing a record outside the region and
a stream without its last frame. Deleting and loading run in transactions of at most
`txn_records` records, so neither pins the writer for long nor builds a huge transaction;
crash safety comes from the caller's region state (`APPLYING`, or a tombstone's
`pending_delete`), which is cleared only after the last step: redoing the whole operation
after a crash is always correct. Errors of the image format surface as `RegionDataError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from cairn.storage.errors import RegionDataError
from cairn.storage.failpoints import fail_point
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.store.keyspace import write_batch
from cairn.store.ranges import (
    DEFAULT_CHUNK_BYTES,
    ImageError,
    ImageReader,
    delete_records,
    image_frames,
    iter_scope,
)
from cairn.store.scope import Scope

DEFAULT_TXN_RECORDS = 4096

FP_DELETE_STEP = "storage.region.delete_step"
"""Failure point reached after each committed transaction of a range deletion."""
FP_INSTALL_STEP = "storage.region.install_step"
"""Failure point reached after each committed transaction of a range install."""


@contextmanager
def _region_data_errors() -> Iterator[None]:
    """Report the store's `ImageError` (a bad image or record key) as this layer's error."""
    try:
        yield
    except ImageError as exc:
        raise RegionDataError(str(exc)) from exc


def count_region(space: LmdbKeyspace, scope: Scope) -> int:
    """How many records the region has (a walk: for tests, checks and size estimates)."""
    with space.view() as view, _region_data_errors():
        return sum(1 for _ in iter_scope(view, scope))


def range_snapshot(
    space: LmdbKeyspace, scope: Scope, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """The region's image as frames of about `chunk_bytes` (module docstring).

    The frames come from one read transaction, held until the iterator is exhausted or
    closed: consume it promptly (or store it, as `SnapshotWriter` does), since a held
    reader keeps LMDB from reusing the pages written since.
    """
    with space.view() as view, _region_data_errors():
        yield from image_frames(view, scope, chunk_bytes)


def delete_range(
    space: LmdbKeyspace, scope: Scope, *, txn_records: int = DEFAULT_TXN_RECORDS
) -> int:
    """Delete every record of `scope` (data, and a region's system records), at most
    `txn_records` per transaction; how many were deleted."""
    total = 0
    while True:
        with write_batch(space) as batch, _region_data_errors():
            deleted = delete_records(batch, scope, txn_records)
        fail_point(FP_DELETE_STEP)
        total += deleted
        if deleted < txn_records:
            return total


def install_range(
    space: LmdbKeyspace,
    scope: Scope,
    data: Iterable[bytes],
    *,
    txn_records: int = DEFAULT_TXN_RECORDS,
) -> int:
    """Replace the region's data by a `range_snapshot` (in pieces split anywhere).

    Deletes the range first, then loads; how many records were loaded. `RegionDataError`
    if the data is malformed, truncated, of another region or holds a foreign record (what
    was loaded so far stays: the caller's `APPLYING` state makes it redo the install).
    """
    delete_range(space, scope, txn_records=txn_records)
    loader = _Loader(space, txn_records)
    with _region_data_errors():
        reader = ImageReader(scope)
        for piece in data:
            for key, value in reader.feed(piece):
                loader.put(key, value)
        loader.flush()
        reader.close()
    return loader.loaded


class _Loader:
    """Writes records into the keyspace in transactions of bounded size."""

    def __init__(self, space: LmdbKeyspace, limit: int) -> None:
        self._space = space
        self._limit = limit
        self._pending: list[tuple[bytes, bytes]] = []
        self.loaded = 0

    def put(self, key: bytes, value: bytes) -> None:
        """Stage one record, committing the staged ones when there are `limit` of them."""
        self._pending.append((key, value))
        if len(self._pending) >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Commit the staged records in one transaction."""
        if not self._pending:
            return
        with write_batch(self._space) as batch:
            for key, value in self._pending:
                batch.put(key, value)
        fail_point(FP_INSTALL_STEP)
        self.loaded += len(self._pending)
        self._pending = []
