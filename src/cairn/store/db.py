"""`Db`: the Redis-level view of the keyspace that command handlers work with.

A `Db` wraps either a keyspace (reads) or an open write batch (writes) and a `now_ms`, the
time the command runs at. Expiry is lazy and deterministic: a key whose expiry is
`<= now_ms` reads as absent; when a write command meets such a key it deletes it in its own
batch before going on, exactly as every replica will at the same
log index with the same `now_ms`. Read-only `Db`s never write.

A `Db` works within a `Scope`: walks (KEYS, SCAN, RANDOMKEY, active expiry) stay inside its
range, FLUSHDB clears only its range, and the key count it maintains is the scope's (a
region's total and per-slot counts, updated in the same batch as the key itself).

Sub-records live under the key's version (`cairn.store.layout.element_prefix`), which the
`Db` keeps per key: read from the metadata the first time a key is met, or chosen by
`cairn.store.reclaim.next_version` for a key being created. Deleting a composite key
drops its metadata and hands its records to `cairn.store.reclaim.bury` (O(1) for a large
value; the leader reclaims the records afterwards in bounded steps).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cairn.store.keyspace import KeyspaceReader, WriteBatch
from cairn.store.layout import (
    Meta,
    ValueType,
    decode_meta,
    decode_u64,
    element_prefix,
    encode_meta,
    encode_u64,
    lock_key,
    meta_key,
    prefix_end,
    slot_start,
    split_meta_key,
)
from cairn.store.notifications import EXPIRED, NEW, Event
from cairn.store.reclaim import bury, next_version, reclaim
from cairn.store.scope import WHOLE_KEYSPACE, Scope
from cairn.store.slot import key_slot

_log = logging.getLogger("cairn.store")

_Scan = Callable[[bytes, bytes | None, int | None], list[tuple[bytes, bytes]]]
"""A keyspace walk, forwards (`scan`) or backwards (`rscan`)."""


class ReadOnlyError(Exception):
    """A handler tried to write through a read-only `Db` (a bug in the command table)."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One Redis key met while walking the keyspace: its internal position and metadata."""

    position: bytes
    slot: int
    key: bytes
    meta: Meta


class Db:
    """Typed access to Redis keys and hash fields at one point in time."""

    def __init__(
        self,
        reader: KeyspaceReader,
        batch: WriteBatch | None,
        now_ms: int,
        scope: Scope = WHOLE_KEYSPACE,
        stamp: bytes = b"",
        lookups: list[int] | None = None,
    ) -> None:
        """A view at `now_ms`; `batch` None: read-only. `stamp` (`encode_stamp`) marks
        every key this writer changes, and deletions in the scope, for WATCH. `lookups`:
        [hits, misses] counters `lookup` adds to (Redis' keyspace_hits/misses)."""
        self._lookups = lookups
        self._reader: KeyspaceReader = batch if batch is not None else reader
        self._batch = batch
        self.now_ms = now_ms
        self.scope = scope
        self.stamp = stamp
        self._unstamped: set[bytes] = set()
        """Keys whose sub-records changed but whose metadata was not rewritten yet."""
        self._overwritten: set[bytes] = set()
        """Keys `overwrite` deleted: their re-creation is no `new` key (Redis's setKey)."""
        self._prefixes: dict[bytes, tuple[int, bytes]] = {}
        """(version, sub-record prefix) of the keys met so far (`_element_prefix`)."""
        self.events: list[Event] | None = None
        """The keyspace notifications of this write, when the machine collects them
        (`cairn.store.notifications`); None: not collecting (the usual case)."""

    def notify(self, cls: int, event: str, key: bytes) -> None:
        """Record a keyspace notification, if this write collects them."""
        if self.events is not None:
            self.events.append((cls, event, key))

    # -- keys ---------------------------------------------------------------------

    def lookup(self, key: bytes) -> Meta | None:
        """The live metadata of `key`, or None (missing or expired; a writer purges it)."""
        raw = self._reader.get(meta_key(key))
        meta = None if raw is None else decode_meta(raw)
        if meta is not None and meta.expired(self.now_ms):
            if self._batch is not None:
                self._purge(key, meta)
                self.notify(EXPIRED, "expired", key)
            meta = None
        elif (
            meta is not None and meta.type is not ValueType.STRING and key not in self._prefixes
        ):  # its sub-records are what the command reads next
            self._prefixes[key] = (meta.version, element_prefix(key, meta.version))
        if self._lookups is not None:
            self._lookups[meta is None] += 1
        return meta

    def put_meta(self, key: bytes, meta: Meta, existed: bool) -> None:
        """Store `key`'s metadata; `existed` says whether `key` was live before (key count).
        The record keeps the key's version (`Db`'s, whatever `meta` carries)."""
        version = 0 if meta.type is ValueType.STRING else self._element_prefix(key)[0]
        self._write().put(meta_key(key), encode_meta(meta, self.stamp or None, version))
        self._unstamped.discard(key)
        if not existed:
            self._add_key_count(key, 1)
            if key in self._overwritten:
                self._overwritten.discard(key)
            else:
                self.notify(NEW, "new", key)

    def finish_stamps(self) -> None:
        """Stamp the keys whose sub-records changed without a metadata rewrite (LSET, HSET
        of an existing field ...): called once a write command succeeded, so every key it
        changed carries its stamp."""
        if not self.stamp:
            return
        for key in sorted(self._unstamped):
            raw = self._reader.get(meta_key(key))
            if raw is not None:
                self._write().put(meta_key(key), encode_meta(decode_meta(raw), self.stamp))
        self._unstamped.clear()

    def set_string(self, key: bytes, value: bytes, expire_ms: int | None = None) -> None:
        """Make `key` the string `value`, replacing whatever it held."""
        old = self.lookup(key)
        if old is not None and old.type is not ValueType.STRING:
            self._bury(key, old)
        self.put_meta(key, Meta(ValueType.STRING, expire_ms, value=value), old is not None)

    def delete(self, key: bytes) -> bool:
        """Delete `key` with its sub-records; whether it was live."""
        meta = self.lookup(key)
        if meta is None:
            return False
        self._purge(key, meta)
        return True

    def overwrite(self, key: bytes) -> bool:
        """`delete` for a key about to be written again by the same command (the *STORE
        commands): its re-creation is not reported as a new key, as Redis's setKey
        overwrites in place; whether it was live."""
        deleted = self.delete(key)
        if deleted:
            self.rewriting(key)
        return deleted

    def rewriting(self, key: bytes) -> None:
        """This command deletes `key` and creates it again (see `overwrite`): no `new`."""
        if self.events is not None:
            self._overwritten.add(key)

    def purge_if_expired(self, key: bytes) -> bool:
        """Delete `key` if it exists and is expired at `now_ms` (active expiry); a key
        locked by a cross-region transaction is left alone (`cairn.store.txn_locks`: its
        commit decides its value)."""
        raw = self._reader.get(meta_key(key))
        if raw is None or not decode_meta(raw).expired(self.now_ms):
            return False
        if self._reader.get(lock_key(key)) is not None:
            return False
        self._purge(key, decode_meta(raw))
        self.notify(EXPIRED, "expired", key)
        return True

    @property
    def records(self) -> KeyspaceReader:
        """The raw records this view reads (its batch when it writes): for the modules
        keeping records of their own beside the keys (`cairn.store.txn_locks`)."""
        return self._reader

    def record_writer(self) -> WriteBatch:
        """The batch this writer writes to (`ReadOnlyError` for a read-only view)."""
        return self._write()

    def last_deletion(self) -> bytes:
        """The stamp of the scope's last key deletion (empty: none since stamps exist)."""
        return self._reader.get(self.scope.deleted_key) or b""

    def key_count(self) -> int:
        """The number of Redis keys in the scope, expired ones not yet deleted included."""
        return decode_u64(self._reader.get(self.scope.count_key))

    def slot_key_count(self, slot: int) -> int | None:
        """The number of Redis keys of `slot` in the scope (None: the scope keeps none)."""
        where = self.scope.slot_count_key(slot)
        return None if where is None else decode_u64(self._reader.get(where))

    @property
    def start_position(self) -> bytes:
        """The internal position of the scope's first possible key."""
        return self.scope.meta_bounds()[0]

    def walk(self, position: bytes, limit: int) -> list[KeyEntry]:
        """Up to `limit` keys of the scope from internal `position` on, in (slot, key)
        order, expired ones included (the caller filters them, so `limit` bounds the work
        done)."""
        lo, hi = self.scope.meta_bounds()
        entries = []
        for internal, raw in self._reader.scan(max(position, lo), hi, limit):
            slot, key = split_meta_key(internal)
            entries.append(KeyEntry(internal, slot, key, decode_meta(raw)))
        return entries

    def clear(self) -> None:
        """Delete every key of the scope (FLUSHDB) with its count; the machine rewrites
        its progress records after it. The whole keyspace is cleared in one step, a
        region's range key by key (O(keys), like Redis' FLUSHDB: large values are buried,
        `cairn.store.reclaim`)."""
        batch = self._write()
        if not self.scope.is_region:
            batch.clear()
            self._mark_deleted()
            return
        while entries := self.walk(self.scope.meta_bounds()[0], _CLEAR_CHUNK):
            for e in entries:
                if e.meta.type is not ValueType.STRING:
                    self._bury(e.key, e.meta)
                batch.delete(e.position)
        bounds = self.scope.slot_count_bounds()
        assert bounds is not None
        for internal, _ in batch.scan(*bounds):
            batch.delete(internal)
        batch.delete(self.scope.count_key)
        self._mark_deleted()

    def reclaim(self, budget: int) -> int:
        """Delete up to `budget` records of the scope's buried values
        (`cairn.store.reclaim.reclaim`); how many."""
        return reclaim(self._write(), self.scope, budget)

    # -- sub-records (hash fields, list positions, set and sorted-set members) ---------
    #
    # A sub-record is named by its key and a `field`, the bytes after the key's ``F``
    # prefix and version: a hash field, a list position, a member, or a sorted set's
    # tagged entries. The caller has checked the key's type and maintains its
    # metadata's size.

    def get_field(self, key: bytes, field: bytes) -> bytes | None:
        """The value of sub-record `field` of `key`."""
        return self._reader.get(self._element_prefix(key)[1] + field)

    def put_field(self, key: bytes, field: bytes, value: bytes) -> None:
        """Store sub-record `field` of `key`."""
        self._write().put(self._element_prefix(key)[1] + field, value)
        if self.stamp:
            self._unstamped.add(key)

    def delete_field(self, key: bytes, field: bytes) -> None:
        """Remove sub-record `field` of `key`."""
        self._write().delete(self._element_prefix(key)[1] + field)
        if self.stamp:
            self._unstamped.add(key)

    def fields(
        self,
        key: bytes,
        start: bytes = b"",
        limit: int | None = None,
        end: bytes | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Sub-records of `key` with `start <= field < end` (`end` None: no bound) and
        their values, in field byte order."""
        prefix = self._element_prefix(key)[1]
        return _walk(self._reader.scan, prefix, start, limit, end)

    def fields_reversed(
        self,
        key: bytes,
        start: bytes = b"",
        limit: int | None = None,
        end: bytes | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Like `fields`, in descending field order (the last ones first)."""
        prefix = self._element_prefix(key)[1]
        return _walk(self._reader.rscan, prefix, start, limit, end)

    def raw_fields(
        self, key: bytes, start: bytes, limit: int | None, end: bytes, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """`fields` (`fields_reversed` when `reverse`) with each record's whole keyspace
        key, whose first `field_offset(key)` bytes are the key's prefix: for walks that
        read many records and use the fields of few (the order-statistics index), sparing
        a copy of every record."""
        prefix = self._element_prefix(key)[1]
        scan = self._reader.rscan if reverse else self._reader.scan
        return scan(prefix + start, prefix + end, limit)

    def put_record(self, key: bytes, record: bytes, value: bytes) -> None:
        """`put_field` of a sub-record of `key` named by its whole keyspace key, as
        `raw_fields` returned it."""
        self._write().put(record, value)
        if self.stamp:
            self._unstamped.add(key)

    def field_prefix(self, key: bytes) -> bytes:
        """The prefix of `key`'s sub-records in the keys `raw_fields` returns (a field's
        record is this prefix plus the field): for walks that go to `records` directly."""
        return self._element_prefix(key)[1]

    def field_offset(self, key: bytes) -> int:
        """Where a field starts in the keys `raw_fields` returns for `key`."""
        return len(self._element_prefix(key)[1])

    def _element_prefix(self, key: bytes) -> tuple[int, bytes]:
        """(version, sub-record prefix) of `key`: its metadata's version when it has
        metadata, else the version a new incarnation takes (`next_version`)."""
        known = self._prefixes.get(key)
        if known is None:
            raw = self._reader.get(meta_key(key))
            if raw is not None:
                version = decode_meta(raw).version
            else:
                version = next_version(self._reader, key)
            known = self._prefixes[key] = (version, element_prefix(key, version))
        return known

    # -- internals ----------------------------------------------------------------------

    def _write(self) -> WriteBatch:
        if self._batch is None:
            raise ReadOnlyError("write through a read-only Db")
        return self._batch

    def _purge(self, key: bytes, meta: Meta) -> None:
        if meta.type is not ValueType.STRING:
            self._bury(key, meta)
        self._write().delete(meta_key(key))
        self._unstamped.discard(key)
        self._add_key_count(key, -1)
        self._mark_deleted()

    def _mark_deleted(self) -> None:
        """Record that a key of the scope was deleted by this write (`deleted_key`): how
        WATCH tells that a key absent at WATCH and at EXEC was not created in between."""
        if self.stamp:
            self._write().put(self.scope.deleted_key, self.stamp)

    def _bury(self, key: bytes, meta: Meta) -> None:
        """Dispose of the sub-records of `key`'s incarnation `meta` (deleted now, or
        buried for `reclaim` when large); the key's next incarnation takes a new version."""
        bury(self._write(), key, meta.version)
        self._prefixes.pop(key, None)

    def _add_key_count(self, key: bytes, delta: int) -> None:
        """Add `delta` to the scope's key count and to the count of `key`'s slot, in the
        same batch as the key's metadata record (already written or deleted).

        A count that would go below zero means the counts no longer match the records,
        a broken invariant (docs/reliability.md, Known findings): rather than stop the
        region for good on every replica (the entry fails again after each restart), the
        slot is counted again from its records and the total summed again, both logged
        as errors. The records are the same on every replica, so the repair is too."""
        batch = self._write()
        total = self.scope.count_key
        value = decode_u64(batch.get(total)) + delta
        if self.scope.is_region:
            slot = key_slot(key)
            where = self.scope.slot_count_key(slot)
            assert where is not None
            slot_ok = _add_slot_count(batch, where, delta)
            if not slot_ok:
                self._recount_slot(slot, where)
            if not slot_ok or value < 0:
                value = self._sum_slot_counts()
        elif value < 0:
            value = self._recount_all()
        batch.put(total, encode_u64(value))

    def _recount_slot(self, slot: int, where: bytes) -> None:
        """Set the count of `slot` (record `where`) from the scope's records of it."""
        batch = self._write()
        lo, hi = self.scope.meta_bounds()
        found = _count_rows(batch, max(lo, slot_start(slot)), min(hi, slot_start(slot + 1)))
        _log.error(
            "region %s: the key count of slot %d would go below zero; counted again "
            "from its records: %d",
            self.scope.region_id,
            slot,
            found,
        )
        if found:
            batch.put(where, encode_u64(found))
        else:
            batch.delete(where)

    def _sum_slot_counts(self) -> int:
        """The scope's total as the sum of its per-slot counts (O(non-empty slots))."""
        bounds = self.scope.slot_count_bounds()
        assert bounds is not None
        total = sum(decode_u64(value) for _, value in self._write().scan(*bounds))
        _log.error(
            "region %s: key count summed again from its slots: %d", self.scope.region_id, total
        )
        return total

    def _recount_all(self) -> int:
        """The number of the scope's metadata records (the whole keyspace's repair)."""
        found = _count_rows(self._write(), *self.scope.meta_bounds())
        _log.error("the key count would go below zero; counted again from the records: %d", found)
        return found


_CLEAR_CHUNK = 1024


def _walk(
    scan: _Scan, prefix: bytes, start: bytes, limit: int | None, end: bytes | None
) -> list[tuple[bytes, bytes]]:
    """Sub-records under `prefix` with `start <= field < end`, fields stripped of it."""
    skip = len(prefix)
    stop = prefix_end(prefix) if end is None else prefix + end
    return [(internal[skip:], value) for internal, value in scan(prefix + start, stop, limit)]


def _add_slot_count(batch: WriteBatch, where: bytes, delta: int) -> bool:
    """Add `delta` to the per-slot counter at `where`; one reaching 0 is deleted, so a
    region keeps records only for its non-empty slots (what a split walks). False, and
    nothing written, when it would go below zero (the caller counts the slot again)."""
    value = decode_u64(batch.get(where)) + delta
    if value < 0:
        return False
    if value:
        batch.put(where, encode_u64(value))
    else:
        batch.delete(where)
    return True


def _count_rows(reader: KeyspaceReader, lo: bytes, hi: bytes) -> int:
    """How many records lie in ``[lo, hi)``, read a page at a time."""
    count, position = 0, lo
    while position < hi and (rows := reader.scan(position, hi, _CLEAR_CHUNK)):
        count += len(rows)
        position = rows[-1][0] + b"\x00"
    return count
