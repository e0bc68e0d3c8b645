"""Moving a lone Raft group's log into a region's records: the upgrade of the placement log.

Before the placement group ran as a hosted region, a member kept its Raft log in the
original single-group layout of its own environment (`<data_dir>/placement`: the whole
`raft_log` and `raft_state` databases, `RaftKeys.single`). A member's environment is now a
`NodeStore` holding one region, the placement group's. `migrate_lone_group` moves the old
records there, as they are, in ONE write transaction (then a sync): the region's record,
its snapshot (its image wrapped as the region's machine expects), its entries and its hard
state are written under the region's keys, and the single-group databases are emptied. A
crash before the commit leaves the old layout (migrated again at the next start); after,
the new one. Nothing changes meaning: the term, the vote, the commit index and every entry
are the member's own, so the group's Raft safety carries over; only the frames that carry
its messages change (envelopes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from cairn.env import LogBatch
from cairn.storage.errors import CorruptLogError
from cairn.storage.log_store import LmdbLogStore
from cairn.storage.node_store import NodeStore
from cairn.storage.raft_keys import RaftKeys
from cairn.storage.region_meta import RegionLocalState

ImageWrapper = Callable[[bytes], bytes]
"""Turns the lone group's snapshot image into the region machine's (b"" stays b"")."""


def has_lone_group(store: NodeStore) -> bool:
    """Whether `store`'s environment still holds records of the single-group layout."""
    env = store.env
    with env.read() as txn:
        for db in (env.log_db, env.state_db):
            with txn.cursor(db=db) as cur:
                if cur.first():
                    return True
    return False


def migrate_lone_group(store: NodeStore, state: RegionLocalState, wrap: ImageWrapper) -> bool:
    """Move the single-group log of `store`'s environment to region `state.region_id`
    (recorded as `state`), in one transaction (see the module docstring); False when there
    was nothing to move. `CorruptLogError` if the old log is damaged, or if the region
    already has records (both layouts at once: the directory was tampered with)."""
    if not has_lone_group(store):
        return False
    if store.state(state.region_id) is not None:
        raise CorruptLogError(
            f"{store.env.path}: both the old single-group placement log and region "
            f"{state.region_id}'s records are present; refusing to guess which is current"
        )
    env = store.env
    old = LmdbLogStore(env).load()  # verifies every old record first
    snap = old.snapshot
    if snap.data:
        snap = replace(snap, data=wrap(snap.data))
    target = LmdbLogStore(env, keys=RaftKeys.region(env, state.region_id))
    batch = LogBatch(
        snapshot=None if snap.is_empty() else snap,
        entries=old.entries,
        hard_state=old.hard_state,
    )
    with env.write() as wtx:
        store.stage_state(wtx, state)
        target.stage(wtx, batch)
        wtx.txn.drop(env.log_db, delete=False)
        wtx.txn.drop(env.state_db, delete=False)
    env.sync()
    return True
