"""Reclaiming trimmed stream records: the stream half of the `cairn.reclaim` step.

Theory of operation. XTRIM and XADD's trimming only move a stream's cut (`stream_store`):
XLEN, XRANGE, XINFO and every other command answer at once as if the trimmed entries
were gone, and their records stay behind the cut until deleted. Two things delete them,
both inside applied Raft entries, so every replica deletes the same records at the same
log index, and the progress (the stream's `reclaim` flag, the records themselves) is
replicated state that snapshots, restarts, splits and merges carry:

* every later write that rewrites the stream's metadata deletes up to
  `stream_store.RECLAIM_BATCH` of them first (`stream_store.save`): a stream written
  often pays for its own trims in proportion;
* the region leader's `cairn.reclaim key [key ...]` steps (`cairn.store.reclaim`, proposed
  by `cairn.runtime.reclaimer` for the streams `StoreMachine.reclaimable_streams` finds)
  hand the streams they name to `reclaim_streams`, with a bounded budget of records.

Each apply's work is therefore bounded, whatever was trimmed. The step is not a write in
the user's sense: it rewrites the stream's metadata with its old modification stamp (a
WATCH on the stream is not broken by it), raises no keyspace notification, and does
nothing to a key that is no longer a stream with records to reclaim (deleted, re-created,
overwritten since the leader looked: a re-created stream has no trimmed records, and the
old incarnation's records are buried under another version, `cairn.store.reclaim`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.store.commands.stream_store import decode_state, is_legacy, reclaim, save_state
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType


def needs_reclaim(meta: Meta) -> bool:
    """Whether a key's metadata is a stream with trimmed records left to delete."""
    if meta.type is not ValueType.STREAM or is_legacy(meta):
        return False
    return decode_state(meta).reclaim


def reclaim_streams(db: Db, keys: Sequence[bytes], budget: int) -> int:
    """Delete up to `budget` trimmed records of the streams `keys` (in order, each once;
    keys that are not such streams any more are skipped); how many were deleted."""
    stamp = db.stamp
    left = budget
    for key in dict.fromkeys(keys):
        if left <= 0:
            break
        db.stamp = stamp  # an expired key's purge is a deletion like any other
        meta = db.lookup(key)
        if meta is None or not needs_reclaim(meta):
            continue
        db.stamp = b""  # physical only: the key keeps its stamp (module docstring)
        state, done = reclaim(db, key, decode_state(meta), left)
        save_state(db, key, meta, state)
        left -= done
    db.stamp = stamp
    return budget - left
