"""Deleting large composite values in O(1), and reclaiming their records in bounded steps.

Theory of operation. A list, set, sorted set, hash or stream keeps one ``F`` record per
element under its key's *version* (`cairn.store.layout.element_prefix`), and the version
lives in the key's metadata. Deleting such a key (DEL, UNLINK, an overwrite by SET or a
*STORE command, RENAME onto it, expiry, FLUSHDB of a region) drops the metadata and calls
`bury`:

- an incarnation with at most `INLINE_RECORDS` sub-records has them deleted in the same
  batch (Redis's lazyfree does the same below its effort threshold of 64: a background
  free would cost more than the free);
- a larger one gets a graveyard record ``G | slot | key length | key | version`` and keeps
  its records for now: the delete is O(1) whatever the size. The key is gone at once
  (EXISTS, DBSIZE, the key counts, MEMORY USAGE all see it gone: they read metadata).

A key created again takes `next_version`: one above the largest buried version of that
key (0 when none is buried), so it never sees the old incarnation's records. Invariant:
every ``F`` record belongs either to its key's live version or to a buried one.

The region's leader proposes the internal `RECLAIM_COMMAND` while `has_garbage` says the
region holds ``G`` records or it knows trimmed streams (`cairn.runtime.reclaimer`: the one
proposer of background reclaim). Applying it (`cairn.store.commands.keys.cmd_reclaim`) is
one bounded step over both kinds of garbage: at most `RECLAIM_BUDGET` records in all,
split between the trimmed records of the streams it names
(`cairn.store.commands.stream_reclaim.reclaim_streams`) and the graveyard (`reclaim`: the
oldest graveyard record first in key order, deleted once its incarnation has no record
left). Each step is an ordinary Raft entry, so every replica deletes exactly the same
records at the same index, and the work per entry is bounded whatever was deleted or
trimmed. The graveyard is part of the region's records (`cairn.store.ranges`: G sorts by
slot like F), and a stream's trimmed state is in its metadata, so both survive restarts,
travel in snapshots and follow their keys through splits and merges; reclaiming resumes
wherever they are after any of them.

Pure: no I/O; the records are read and written through a `WriteBatch`.
"""

from __future__ import annotations

from cairn.store.keyspace import KeyspaceReader, WriteBatch
from cairn.store.layout import (
    GARBAGE_TAG,
    MAX_VERSION,
    buried_prefix,
    buried_version,
    element_prefix,
    garbage_key,
    garbage_prefix,
    prefix_end,
)
from cairn.store.ranges import iter_fields
from cairn.store.scope import Scope

INLINE_RECORDS = 64
"""Sub-records a deleted incarnation may have and still be deleted in the same batch."""

RECLAIM_BUDGET = 1024
"""Records one `RECLAIM_COMMAND` entry deletes at most (buried sub-records, graveyard
records and trimmed stream records together): the bound on the work a reclaim step adds
to an apply."""

RECLAIM_COMMAND = "cairn.reclaim"
"""The internal command ``cairn.reclaim [stream ...]`` a region's leader proposes while
its graveyard is not empty or it knows streams with trimmed records (which it names); not
in `COMMANDS`, so no client can send it. Its reply is the number of records deleted."""


def bury(batch: WriteBatch, key: bytes, version: int) -> bool:
    """Dispose of the sub-records of incarnation `version` of `key`, whose metadata the
    caller deletes: at most `INLINE_RECORDS` are deleted now, more are left to `reclaim`
    under a graveyard record. Whether it was buried (records left behind)."""
    prefix = element_prefix(key, version)
    rows = batch.scan(prefix, prefix_end(prefix), INLINE_RECORDS + 1)
    if len(rows) > INLINE_RECORDS:
        batch.put(garbage_key(key, version), b"")
        return True
    for internal, _ in rows:
        batch.delete(internal)
    return False


def next_version(reader: KeyspaceReader, key: bytes) -> int:
    """The version a new incarnation of `key` (not live now) takes: above every buried
    one, so none of their records is visible to it."""
    prefix = garbage_prefix(key)
    last = reader.rscan(prefix, prefix_end(prefix), 1)
    if not last:
        return 0
    version = buried_version(last[0][0])
    if version >= MAX_VERSION:  # 2^32 buried incarnations of one key: unreachable
        raise OverflowError(f"key {key!r} has no version left")
    return version + 1


def has_garbage(reader: KeyspaceReader, scope: Scope) -> bool:
    """Whether the scope holds a buried incarnation (one short walk of its ``G`` range)."""
    return next(iter_fields(reader, scope, GARBAGE_TAG), None) is not None


def buried(reader: KeyspaceReader, scope: Scope) -> int:
    """How many buried incarnations the scope holds (a walk: for INFO-like reports and
    tests)."""
    return sum(1 for _ in iter_fields(reader, scope, GARBAGE_TAG))


def reclaim(batch: WriteBatch, scope: Scope, budget: int = RECLAIM_BUDGET) -> int:
    """Delete up to `budget` records of the scope's buried incarnations, in graveyard
    order, dropping each graveyard record once its incarnation is empty (it counts in the
    budget); how many records were deleted. Each incarnation is emptied from its last
    record backwards, which a sorted array (`MemoryKeyspace`) deletes without moving the
    records before it."""
    deleted = 0
    while deleted < budget:
        first = next(iter_fields(batch, scope, GARBAGE_TAG), None)
        if first is None:
            break
        grave = first[0]
        prefix = buried_prefix(grave)
        want = budget - deleted
        rows = batch.rscan(prefix, prefix_end(prefix), want)  # from the end: see above
        for internal, _ in rows:
            batch.delete(internal)
        deleted += len(rows)
        if len(rows) < want:
            batch.delete(grave)
            deleted += 1
    return deleted


__all__ = [
    "GARBAGE_TAG",
    "INLINE_RECORDS",
    "RECLAIM_BUDGET",
    "RECLAIM_COMMAND",
    "buried",
    "bury",
    "has_garbage",
    "next_version",
    "reclaim",
]
