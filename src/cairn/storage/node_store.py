"""`NodeStore`: the Raft storage and metadata of every region a node hosts, in one environment.

Theory of operation. A multi-raft node keeps all of its regions in its one LMDB
environment: each region's log and Raft state under its id (`raft_keys`), its metadata
record (`region_meta`) and its state machine data in the shared keyspace (`region_data`).
`store(region_id)` hands out the region's `LmdbLogStore` (the driver's `LogStore` and the
core's `Storage` for that region alone); stores are opened, and verified, on first use,
so a node with 1,000 mostly idle regions starts by listing their records, nothing more.

Group commit: `write_many([(region_id, batch), ...], sync, states)` stages the Ready
batches of many regions, and any metadata changes they cause, in ONE write transaction,
then syncs once. Every structural change is one transaction, or a sequence of them that
a region state marks as unfinished, so a crash at any point leaves a directory that
`open` accepts and `pending()` names the work to finish:

- create (a split's new region, a peer created by a message or a snapshot): the record
  and the initial Raft state in one transaction (`create_region`, `stage_create`);
- split: both records and the new region's Raft state and applied index, written inside
  the transaction that applies the split entry (`stage_split`); no data moves;
- merge: the target's grown record, the source's tombstone, the source's Raft records and
  applied index deleted, inside the transaction applying the merge (`stage_merge`);
- remove: transaction 1 writes a tombstone with `pending_delete` and drops the Raft
  records; the data range is deleted in bounded transactions; the last one clears the
  flag (`destroy_region`, `finish_destroy`);
- snapshot: the Raft batch carrying the snapshot and the `APPLYING` state in one
  transaction; the data is installed in bounded transactions; the last one sets
  `NORMAL` (`apply_snapshot`). Redoing either after a crash is always correct.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import lmdb

from cairn.env import LogBatch
from cairn.meta.region import Region
from cairn.raft.types import ConfState, HardState, SnapshotMetadata
from cairn.storage import region_data
from cairn.storage.errors import CorruptLogError, RegionDataError, UnknownRegionError
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions, WriteTxn, open_built
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.storage.log_store import DEFAULT_CACHE_ENTRIES, DEFAULT_CHUNK_SIZE, LmdbLogStore
from cairn.storage.raft_keys import RaftKeys, prefix_region, region_prefix
from cairn.storage.records import SnapshotRecord
from cairn.storage.region_meta import (
    PeerState,
    RegionLocalState,
    decode_state,
    encode_state,
    key_region,
    meta_key,
)
from cairn.store.layout import decode_u64, encode_u64, prefix_end, region_system_prefix
from cairn.store.ranges import DEFAULT_CHUNK_BYTES
from cairn.store.scope import Scope

RAFT_INIT_INDEX = 5
"""The log index (and term) a split's new region starts from (TiKV's RAFT_INIT_LOG_INDEX):
above the bootstrap index, so a peer created earlier by a message (at 0) is behind it."""


def region_scope(region: Region) -> Scope:
    """The part of the shared keyspace a region's state machine owns."""
    return Scope.region(region.id, region.start, region.end)


class NodeStore:
    """Every region's Raft storage and metadata on one node; see the module docstring."""

    def __init__(
        self,
        env: LmdbEnv,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        keyspace: LmdbKeyspace | None = None,
    ) -> None:
        """Load the region records of `env` (a `CorruptLogError` names a damaged one)."""
        self.env = env
        self.keyspace = keyspace if keyspace is not None else LmdbKeyspace(env)
        self.chunk_size = chunk_size
        self.cache_entries = cache_entries
        self._states = self._load_states()
        self._stores: dict[int, LmdbLogStore] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        node_id: int,
        cluster_id: str,
        options: LmdbOptions | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> NodeStore:
        """Open the data directory and list its regions; closes the directory on failure."""
        return open_built(
            path,
            node_id,
            cluster_id,
            options,
            lambda env: cls(env, chunk_size=chunk_size, cache_entries=cache_entries),
        )

    def close(self) -> None:
        """Close the environment (syncing it if healthy)."""
        self.env.close()

    # -- listing ---------------------------------------------------------------------------

    def regions(self) -> list[RegionLocalState]:
        """Every region record of the node (tombstones included), by region id."""
        return [self._states[rid] for rid in sorted(self._states)]

    def state(self, region_id: int) -> RegionLocalState | None:
        """Region `region_id`'s record, or None if the node never hosted it."""
        return self._states.get(region_id)

    def is_live(self, region_id: int) -> bool:
        """Whether this node hosts region `region_id` (a record that is no tombstone)."""
        state = self._states.get(region_id)
        return state is not None and state.state is not PeerState.TOMBSTONE

    def live(self) -> list[RegionLocalState]:
        """The regions this node serves or is installing (every record but tombstones)."""
        return [s for s in self.regions() if s.state is not PeerState.TOMBSTONE]

    def pending(self) -> list[RegionLocalState]:
        """Regions a crash interrupted: `APPLYING` (redo `apply_snapshot`) or a tombstone
        with `pending_delete` (redo `finish_destroy`)."""
        return [s for s in self.regions() if s.state is PeerState.APPLYING or s.pending_delete]

    def store(self, region_id: int) -> LmdbLogStore:
        """Region `region_id`'s log store, opened and verified on first use."""
        found = self._stores.get(region_id)
        if found is not None:
            return found
        self._require_live(region_id)
        keys = RaftKeys.region(self.env, region_id)
        opened = LmdbLogStore(
            self.env, chunk_size=self.chunk_size, cache_entries=self.cache_entries, keys=keys
        )
        self._stores[region_id] = opened
        return opened

    def applied_index(self, region_id: int) -> int:
        """Region `region_id`'s applied index as its state machine last wrote it (0: none)."""
        raw = self.keyspace.get(Scope.region(region_id).applied_key)
        return decode_u64(raw)

    # -- group commit ----------------------------------------------------------------------

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        states: Sequence[RegionLocalState] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """Write the Ready batches of many regions, and the metadata changes they cause,
        in one transaction; then one fsync when `sync`. `apply` runs last inside that
        transaction with the keyspace grouped into it (`LmdbKeyspace.group`): what the
        state machines write then commits with the log, or not at all.

        A state that tombstones a live region removes this node's replica of it: its Raft
        and system records go in the same transaction (a new peer of the region, added
        here later, must not inherit the old one's log, vote or applied index), and its
        data range, unless a live region here overlaps it, is then deleted
        (`finish_destroy`)."""
        removed = []
        if batches or states or apply is not None:
            with self.env.write() as wtx:
                self.stage_many(wtx, batches)
                for state in states:
                    if state.state is PeerState.TOMBSTONE and self.is_live(state.region_id):
                        state = self._removal(state)
                        self._stage_drop_raft(wtx, state.region_id)
                        removed.append(state.region_id)
                    self.stage_state(wtx, state)
                if apply is not None:
                    with self.keyspace.group(wtx):
                        apply()
        if sync:
            self.env.sync()
        for region_id in removed:
            self.finish_destroy(region_id, sync=sync)

    def stage_many(self, wtx: WriteTxn, batches: Sequence[tuple[int, LogBatch]]) -> None:
        """Stage each region's batch into the caller's transaction."""
        for region_id, batch in batches:
            if not batch.is_empty():
                self.store(region_id).stage(wtx, batch)

    def stage_state(self, wtx: WriteTxn, state: RegionLocalState) -> None:
        """Write a region's record inside `wtx` (adopted in memory once it commits)."""
        key = meta_key(state.region_id)
        wtx.txn.put(key, encode_state(state), db=self.env.regions_db)
        wtx.after_commit(lambda: self._states.__setitem__(state.region_id, state))

    # -- creating --------------------------------------------------------------------------

    def create_region(
        self,
        state: RegionLocalState,
        *,
        conf_state: ConfState | None = None,
        index: int = RAFT_INIT_INDEX,
        sync: bool = True,
    ) -> LmdbLogStore:
        """Record a new region and its initial Raft state in one transaction.

        With `conf_state`, the log starts at a snapshot (`index`, term `index`) holding
        that membership, as a split's new region does; without, the log is empty (a peer
        created by a message, waiting for a snapshot). A tombstone may be replaced (a new
        peer of a region removed earlier), once its data is deleted.
        """
        with self.env.write() as wtx:
            self.stage_create(wtx, state, conf_state=conf_state, index=index)
        if sync:
            self.env.sync()
        return self.store(state.region_id)

    def stage_create(
        self,
        wtx: WriteTxn,
        state: RegionLocalState,
        *,
        conf_state: ConfState | None = None,
        index: int = RAFT_INIT_INDEX,
    ) -> None:
        """`create_region` inside the caller's transaction (no sync)."""
        old = self._states.get(state.region_id)
        if old is not None and old.state is not PeerState.TOMBSTONE:
            raise ValueError(f"region {state.region_id} already exists on this node")
        if old is not None and old.pending_delete:
            raise ValueError(f"region {state.region_id}: its old data is still being deleted")
        self._stage_new(wtx, state, conf_state, index)

    def _stage_new(
        self, wtx: WriteTxn, state: RegionLocalState, conf_state: ConfState | None, index: int
    ) -> None:
        keys = RaftKeys.region(self.env, state.region_id)
        self._stage_raft_reset(wtx, keys, conf_state, index)
        if conf_state is not None:
            applied = Scope.region(state.region_id).applied_key
            self.keyspace.stage_put(wtx, applied, encode_u64(index))
        self.stage_state(wtx, state)

    def stage_split(
        self,
        wtx: WriteTxn,
        left: Region,
        right: Region,
        right_conf_state: ConfState,
        *,
        replace_uninitialized: bool = True,
    ) -> bool:
        """Inside the transaction applying a split: the shrunk `left`, the new `right` at
        `RAFT_INIT_INDEX` (its data is already in place, nothing is copied); whether
        `right` was founded.

        A `right` peer created earlier from a message (uninitialized) is replaced, unless
        `replace_uninitialized` is false (a driver that keeps that peer running, waiting
        for a snapshot); one already initialized by a snapshot is ahead of the split and
        left alone; one already removed from this node (a tombstone) stays removed, and
        its range is queued for deletion (`finish_destroy`).
        """
        self.stage_state(wtx, RegionLocalState(left.id, PeerState.NORMAL, left))
        old = self._states.get(right.id)
        if old is None or (
            replace_uninitialized and old.state is not PeerState.TOMBSTONE and not old.initialized
        ):
            new = RegionLocalState(right.id, region=right)
            self._stage_new(wtx, new, right_conf_state, RAFT_INIT_INDEX)
            return True
        if old.state is PeerState.TOMBSTONE:
            tomb = RegionLocalState(right.id, PeerState.TOMBSTONE, right, pending_delete=True)
            self.stage_state(wtx, tomb)
        return False

    def stage_merge(self, wtx: WriteTxn, source_id: int, merged: Region) -> None:
        """Inside the transaction applying a merge: the grown target `merged`, the source
        tombstoned with its Raft records and system records gone (its data now the
        target's)."""
        source = self._require_live(source_id)
        self.stage_state(wtx, RegionLocalState(merged.id, PeerState.NORMAL, merged))
        self._stage_drop_raft(wtx, source_id)
        tomb = RegionLocalState(source_id, PeerState.TOMBSTONE, source.region)
        self.stage_state(wtx, tomb)

    # -- removing --------------------------------------------------------------------------

    def destroy_region(
        self,
        region_id: int,
        *,
        keep_data: bool = False,
        txn_records: int = region_data.DEFAULT_TXN_RECORDS,
        sync: bool = True,
    ) -> int:
        """Remove this node's replica: tombstone, Raft records dropped, then (unless
        `keep_data`) the data range deleted; how many data records were deleted."""
        state = self._require_live(region_id)
        pending = state.region is not None and not keep_data
        with self.env.write() as wtx:
            self._stage_drop_raft(wtx, region_id)
            self.stage_state(
                wtx, RegionLocalState(region_id, PeerState.TOMBSTONE, state.region, pending)
            )
        if sync:
            self.env.sync()
        return self.finish_destroy(region_id, txn_records=txn_records, sync=sync)

    def finish_destroy(
        self,
        region_id: int,
        *,
        txn_records: int = region_data.DEFAULT_TXN_RECORDS,
        sync: bool = True,
    ) -> int:
        """Delete a tombstone's pending data range (a no-op when nothing is pending)."""
        state = self._states.get(region_id)
        if state is None or not state.pending_delete or state.region is None:
            return 0
        scope = region_scope(state.region)
        deleted = region_data.delete_range(self.keyspace, scope, txn_records=txn_records)
        with self.env.write() as wtx:
            self.stage_state(wtx, RegionLocalState(region_id, PeerState.TOMBSTONE, state.region))
        if sync:
            self.env.sync()
        return deleted

    # -- snapshots -------------------------------------------------------------------------

    def apply_snapshot(
        self, region_id: int, *, txn_records: int = region_data.DEFAULT_TXN_RECORDS
    ) -> int:
        """Install the region's stored Raft snapshot into its data range, then mark it
        `NORMAL`; the region must be `APPLYING` (set with the Raft batch that stored the
        snapshot). Returns the number of records loaded."""
        state = self._require_live(region_id)
        if state.state is not PeerState.APPLYING or state.region is None:
            raise ValueError(f"region {region_id} is not applying a snapshot")
        scope = region_scope(state.region)
        for other in self.pending():
            if other.pending_delete and other.region is not None:
                self.finish_destroy(other.region_id, txn_records=txn_records, sync=False)
        store = self.store(region_id)
        meta = store.state.snapshot
        if meta is None:
            raise RegionDataError(f"region {region_id} is applying but stores no snapshot")
        loaded = region_data.install_range(
            self.keyspace, scope, store.snapshot_chunks(), txn_records=txn_records
        )
        self._finish_apply(region_id, state.region, meta.metadata.index)
        return loaded

    def _finish_apply(self, region_id: int, region: Region, index: int) -> None:
        applied = self.applied_index(region_id)
        if applied not in (0, index):
            raise RegionDataError(
                f"region {region_id}: snapshot data is at applied index {applied}, "
                f"its metadata at {index}"
            )
        with self.env.write() as wtx:
            if applied == 0:
                applied_key = Scope.region(region_id).applied_key
                self.keyspace.stage_put(wtx, applied_key, encode_u64(index))
            self.stage_state(wtx, RegionLocalState(region_id, PeerState.NORMAL, region))
        self.env.sync()

    def snapshot_data(
        self, region_id: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """The region's data as snapshot frames (see `region_data.range_snapshot`)."""
        state = self._require_live(region_id)
        if state.region is None:
            raise UnknownRegionError(f"region {region_id} is not initialized: it has no data")
        return region_data.range_snapshot(self.keyspace, region_scope(state.region), chunk_bytes)

    # -- verification ----------------------------------------------------------------------

    def verify(self) -> None:
        """Verify every live region's Raft records, and that no Raft record belongs to a
        region without a live record; `CorruptLogError` names the first damage."""
        for state in self.live():
            self.store(state.region_id).verify()
        live = {s.region_id for s in self.live()}
        for db in (self.env.region_log_db, self.env.region_raft_db):
            for region_id in self._raft_owners(db):
                if region_id not in live:
                    raise CorruptLogError(
                        f"region {region_id} has Raft records but no live region record"
                    )

    def _raft_owners(self, db: lmdb._Database) -> Iterator[int]:
        """The region ids that have records in `db` (one seek per region)."""
        with self.env.read() as txn, txn.cursor(db=db) as cur:
            present = cur.first()
            while present:
                region_id = prefix_region(cur.key())
                yield region_id
                after = prefix_end(region_prefix(region_id))
                present = after is not None and cur.set_range(after)

    # -- internals -------------------------------------------------------------------------

    def _load_states(self) -> dict[int, RegionLocalState]:
        states: dict[int, RegionLocalState] = {}
        with self.env.read() as txn, txn.cursor(db=self.env.regions_db) as cur:
            for key, value in cur.iternext():
                region_id = key_region(key)
                states[region_id] = decode_state(region_id, value)
        return states

    def _removal(self, tomb: RegionLocalState) -> RegionLocalState:
        """`tomb` with its data range marked for deletion, unless another live region here
        overlaps it (a merge target, or a newer region holding the range: the data is
        theirs)."""
        region = tomb.region
        if region is None:
            return tomb
        shared = any(
            s.region is not None and s.region_id != region.id and s.region.overlaps(region)
            for s in self.live()
        )
        return RegionLocalState(tomb.region_id, PeerState.TOMBSTONE, region, not shared)

    def _require_live(self, region_id: int) -> RegionLocalState:
        state = self._states.get(region_id)
        if state is None or state.state is PeerState.TOMBSTONE:
            raise UnknownRegionError(f"region {region_id} is not hosted on this node")
        return state

    def _stage_raft_reset(
        self, wtx: WriteTxn, keys: RaftKeys, conf_state: ConfState | None, index: int
    ) -> None:
        """Replace a region's Raft records by an empty log, or one founded at `index`."""
        keys.clear(wtx.txn, keys.log_db)
        keys.clear(wtx.txn, keys.state_db)
        if conf_state is not None:
            meta = SnapshotMetadata(index=index, term=index, conf_state=conf_state)
            rec = SnapshotRecord(meta, 0, 0, 0, 0)
            wtx.txn.put(keys.first_key, keys.encode_first(index, index), db=keys.state_db)
            wtx.txn.put(keys.snapshot_key, keys.encode_snapshot(rec), db=keys.state_db)
            hs = HardState(term=index, commit=index)
            wtx.txn.put(keys.hard_state_key, keys.encode_hard_state(hs), db=keys.state_db)
        assert keys.region_id is not None
        self._drop_store_after(wtx, keys.region_id)

    def _stage_drop_raft(self, wtx: WriteTxn, region_id: int) -> None:
        """Delete a region's Raft records and system records inside `wtx`."""
        keys = RaftKeys.region(self.env, region_id)
        keys.clear(wtx.txn, keys.log_db)
        keys.clear(wtx.txn, keys.state_db)
        self.keyspace.stage_delete_prefix(wtx, region_system_prefix(region_id))
        self._drop_store_after(wtx, region_id)

    def _drop_store_after(self, wtx: WriteTxn, region_id: int) -> None:
        wtx.after_commit(lambda: self._forget_store(region_id))

    def _forget_store(self, region_id: int) -> None:
        self._stores.pop(region_id, None)
