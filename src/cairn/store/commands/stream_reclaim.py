"""Reclaiming trimmed stream records in the background: the `cairn.xreclaim` entry.

Theory of operation. XTRIM and XADD's trimming only move a stream's cut (`stream_store`):
XLEN, XRANGE, XINFO and every other command answer at once as if the trimmed entries
were gone, and their records stay behind the cut until deleted. Two things delete them,
both inside applied Raft entries, so every replica deletes the same records at the same
log index, and the progress (the stream's `reclaim` flag, the records themselves) is
replicated state that snapshots and restarts carry:

* every later write that rewrites the stream's metadata deletes up to
  `stream_store.RECLAIM_BATCH` of them first (`stream_store.save`);
* the leader proposes `cairn.xreclaim key [key ...]` for streams whose flag is set (found
  by `StoreMachine.reclaimable_streams`, a walk like active expiry's); its apply deletes up
  to `BACKGROUND_BATCH` records over all its keys and answers how many it deleted.

Each apply's work is therefore bounded, whatever was trimmed. The entry is not a write in
the user's sense: it rewrites the stream's metadata with its old modification stamp (a
WATCH on the stream is not broken by it), raises no keyspace notification, and does
nothing to a key that is no longer a stream with records to reclaim (deleted, re-created,
overwritten since the leader looked).
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import Integer, Reply
from cairn.store.commands.spec import Ctx
from cairn.store.commands.stream_store import decode_state, is_legacy, reclaim, save_state
from cairn.store.layout import Meta, ValueType

RECLAIM_COMMAND = "cairn.xreclaim"
"""The internal command the leader proposes to delete trimmed stream records."""
BACKGROUND_BATCH = 1024
"""Records one `cairn.xreclaim` entry deletes at most, over all its keys."""


def needs_reclaim(meta: Meta) -> bool:
    """Whether a key's metadata is a stream with trimmed records left to delete."""
    if meta.type is not ValueType.STREAM or is_legacy(meta):
        return False
    return decode_state(meta).reclaim


def cmd_reclaim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """cairn.xreclaim key [key ...]: delete up to `BACKGROUND_BATCH` trimmed records of
    these streams; how many were deleted."""
    db, stamp = ctx.db, ctx.db.stamp
    budget = BACKGROUND_BATCH
    for key in dict.fromkeys(args):
        if budget <= 0:
            break
        db.stamp = stamp  # an expired key's purge is a deletion like any other
        meta = db.lookup(key)
        if meta is None or not needs_reclaim(meta):
            continue
        db.stamp = b""  # physical only: the key keeps its stamp (module docstring)
        state, done = reclaim(db, key, decode_state(meta), budget)
        save_state(db, key, meta, state)
        budget -= done
    db.stamp = stamp
    return Integer(BACKGROUND_BATCH - budget)
