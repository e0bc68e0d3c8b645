"""`StoreMachine`: the Redis command state machine that Raft replicates.

Theory of operation. A write command travels as a Raft entry holding
`encode_command(name, args, now_ms)`, `now_ms` stamped by the leader's clock when it
proposes. Every replica applies the entry with `apply(index, data)`, which runs the command
in one keyspace write batch together with the new applied index and the largest now_ms
seen, so the data and the applied index can never disagree after a crash. Relative times
(EX, EXPIRE, ...) become absolute with the entry's now_ms, and expiry checks use it too, so
all replicas compute the same state. Time never runs backwards: an entry is applied at
`max(its now_ms, the largest applied so far)`, and a new leader stamps its proposals with
`effective_now(local clock)`.

Reads (`execute_read`) run against the applied state with the leader's now_ms once a
ReadIndex or lease confirms it is current; they never write, so an expired key simply reads
as absent. Expired keys are removed by the leader proposing the internal `EXPIRE_DELETE`
command with keys from `expired_keys`; it deletes a key only if it is still expired at that
entry's now_ms, so a key refreshed in between survives. Deleted large values are
reclaimed the same way, with trimmed stream records: the leader proposes the internal
`RECLAIM_COMMAND` while `has_garbage` or `reclaimable_streams` finds work
(`cairn.store.reclaim`). Those looks skip a scope that surely has no such work without
reading it: the machine notes, from each entry it applies, which kinds of background work
the entry may have created (`hints`, `cairn.store.work_hints`; in memory, never part of
the replicated state).

A command that fails (an error reply) leaves no trace but the applied index. Every write
stamps the keys it changes with its (region, index) for WATCH; a whole MULTI/EXEC is one
internal `cairn.exec` entry applied by `cairn.store.transaction.apply_transaction`; an
IDEMPOTENT write is a `cairn.idem` entry wrapping either, applied at most once per request
id by `cairn.store.idempotency.apply_idempotency`.

Scopes. A machine owns a `Scope`: by default the whole keyspace with the single-group
records (``X applied``, ``X now``, ``X keys``), exactly the store before regions; its
snapshot is the whole keyspace in one msgpack image. A region's machine owns a range of
range keys and keeps its records under its region id; many such machines share one
keyspace (one LMDB environment per node). It refuses a command naming a key outside its
range (`KEY_NOT_IN_REGION`, before anything is written: the router's safety net), runs
whole-keyspace commands (SCAN, KEYS, DBSIZE, RANDOMKEY, FLUSHDB, active expiry) on its range
only, keeps its key count (total and per slot) in the same batch as the keys, and images
exactly its range (`cairn.store.ranges`). `apply_many_within` applies inside a transaction
the caller opened, so a multi-raft driver can write a split or merge (`cairn.store.carve`)
and the region records in the same LMDB write transaction as the entries around it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgpack

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.commands import (
    COMMANDS,
    INTERNAL_COMMANDS,
    CommandError,
    CommandSpec,
    arity_error,
    classify,
    run,
    run_in_batch,
)
from cairn.store.commands.scan import cursor_range_key
from cairn.store.commands.stream_reclaim import needs_reclaim
from cairn.store.db import Db
from cairn.store.encodings import DEFAULT_SETTINGS, ObjectSettings
from cairn.store.idempotency import apply_idempotency
from cairn.store.idempotency_entries import (
    IDEM_COMMAND,
    IDEMPOTENCY_COMMANDS,
    TXN_COMMIT_COMMAND,
    TXN_LOCK_COMMAND,
)
from cairn.store.idempotency_table import earliest_request_expiry
from cairn.store.keyspace import Keyspace, MemoryKeyspace, WriteBatch, write_batch
from cairn.store.layout import decode_u64, encode_stamp, encode_u64
from cairn.store.notifications import Event
from cairn.store.ranges import KeyspaceImages, RangeImages, iter_statuses
from cairn.store.reclaim import has_garbage
from cairn.store.scope import WHOLE_KEYSPACE, KeyOutOfRangeError, Scope
from cairn.store.scripting.effects import EFFECTS_COMMAND, EFFECTS_COMMANDS, apply_effects
from cairn.store.transaction import (
    TRANSACTION_COMMANDS,
    TXN_COMMAND,
    WATCH_COMMAND,
    apply_transaction,
)
from cairn.store.txn_locks import TXN_LOCK_COMMANDS, has_locks, is_locked, lock_error
from cairn.store.work_hints import WorkHints, entry_hints

__all__ = [
    "KEY_NOT_IN_REGION",
    "RetiredMachineError",
    "StoreMachine",
    "classify",
    "decode_command",
    "encode_command",
]

KEY_NOT_IN_REGION = ErrorReply("TRYAGAIN key outside this region's range: route it again")
"""The reply to a command naming a key (or a SCAN cursor) outside a region's range. The
router never sends one; a route made before a split or merge may, and retrying routes it
afresh (TRYAGAIN is what Redis Cluster clients retry on)."""

_SNAPSHOT_VERSION = 1
_SNAPSHOT_CHUNK = 4096
_EXPIRY_SAMPLE_FACTOR = 20
_EVENTS_MAX = 65536
"""Entries whose notifications `StoreMachine.events` holds at most (untaken ones are
dropped beyond it: pub/sub is at-most-once)."""
_DECODED_MAX = 4096
"""Decoded entries `StoreMachine.decode` remembers at most (a Ready's worth, usually)."""


def encode_command(name: str, args: Sequence[bytes], now_ms: int) -> bytes:
    """The data of a Raft entry carrying one write command (`args` without the name)."""
    return bytes(msgpack.packb([name, list(args), now_ms], use_bin_type=True))


def decode_command(data: bytes) -> tuple[str, list[bytes], int]:
    """The inverse of `encode_command`; raises ValueError on anything else."""
    try:
        name, args, now_ms = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("malformed command entry") from exc
    if not (
        isinstance(name, str)
        and isinstance(args, list)
        and all(isinstance(a, bytes) for a in args)
        and isinstance(now_ms, int)
    ):
        raise ValueError("malformed command entry")
    return name, args, now_ms


def _internal_spec(name: str) -> CommandSpec | None:
    """The spec of command `name` as applied: a client command or an internal one."""
    return (
        COMMANDS.get(name)
        or INTERNAL_COMMANDS.get(name)
        or TRANSACTION_COMMANDS.get(name)
        or IDEMPOTENCY_COMMANDS.get(name)
        or TXN_LOCK_COMMANDS.get(name)
        or EFFECTS_COMMANDS.get(name)
    )


def command_keys(name: str, args: Sequence[bytes]) -> list[bytes]:
    """The Redis keys of command `name` as an entry applies it (`args` without the name):
    client and internal commands, MULTI/EXEC, IDEMPOTENT, the cross-region transactions'
    and a script's effects alike; empty for an unknown command or a wrong arity (the
    machine answers those with an error and changes nothing).

    A region's driver checks these against its current range before it lets the machine
    skip its own check (`apply_many(in_range=True)`), so they must be exactly the keys
    the machine's own check would look at: a command family missing here is applied
    unchecked, outside the region, after a split moved its keys away."""
    spec = _internal_spec(name)
    if spec is None or not spec.arity_ok(len(args) + 1):
        return []
    return spec.keys([name.encode(), *args])


_LOCK_CHECKED_INTERNAL = frozenset({TXN_COMMAND, WATCH_COMMAND, IDEM_COMMAND, EFFECTS_COMMAND})
"""The internal commands carrying client commands (a script's effects too: its leader run
read through any lock): lock-checked like those (`cairn.store.txn_locks`); the others
(expiry, reclaim, the transactions' own) are not."""


def _lock_checked(spec: CommandSpec) -> bool:
    return spec.name in _LOCK_CHECKED_INTERNAL or COMMANDS.get(spec.name) is spec


def _spec_for_apply(name: str, args: Sequence[bytes]) -> CommandSpec | ErrorReply:
    spec = _internal_spec(name)
    if spec is None:
        return ErrorReply(f"ERR unknown command '{name}'")
    if not spec.arity_ok(len(args) + 1):
        return arity_error(spec.name)
    return spec


class RetiredMachineError(RuntimeError):
    """The machine was merged into its neighbour: its range and records are the other's."""


class StoreMachine:
    """The replicated Redis keyspace, or a region of it: implements the driver's
    `StateMachine` protocol.

    Invariant: `applied_index` and `max_now_ms` equal the scope's records stored in the
    keyspace (they are written in the same transaction as every command's changes).
    """

    def __init__(
        self,
        keyspace: Keyspace | None = None,
        rng: random.Random | None = None,
        scope: Scope = WHOLE_KEYSPACE,
        images: RangeImages | None = None,
    ) -> None:
        """A machine over `scope` of `keyspace`; `images` takes and installs a region's
        images (default: `KeyspaceImages`, pure; a node on LMDB passes the storage
        layer's range functions)."""
        self.keyspace: Keyspace = keyspace if keyspace is not None else MemoryKeyspace()
        self._rng = rng if rng is not None else random.Random(0)
        self.scope = scope
        self.images: RangeImages = images if images is not None else KeyspaceImages(self.keyspace)
        self.retired = False
        """Set once merged into a neighbour: the machine refuses every further use."""
        self._decoded: dict[bytes, tuple[str, list[bytes], int]] = {}
        self.collect_events = False
        """Whether applying records keyspace notifications (`cairn.store.notifications`):
        set by the node while `notify-keyspace-events` can publish anything."""
        self.events: dict[int, list[Event]] = {}
        """The notifications of applied entries not yet taken (`take_events`), by index."""
        self.lookups = [0, 0]
        """Key lookups of the read commands run here: [hits, misses] (INFO's
        keyspace_hits and keyspace_misses; a serving node's figure, never replicated)."""
        self.stream_laps = 0
        """How many times `reclaimable_streams`' walk went past the last key (never goes
        down): the reclaimer knows a region clean after a whole lap found nothing."""
        self.reads_ignore_locks = False
        """Planted bug (tests only, `cairn.txn`'s plant tests): reads skip the lock check,
        so a read of a key whose transaction committed at its primary but not yet here
        sees the value from before an acknowledged transaction."""
        self.hints = WorkHints()
        """What the leader's background looks may find (`cairn.store.work_hints`): kept
        from the applied entries, in memory only, reset by every reload."""
        self._statuses_possible = True
        self._request_due: int | None = None
        self.reload()

    def reload(self) -> None:
        """Re-read the applied index and time from the keyspace (after a restore, or after
        the caller's transaction around `apply_many_within` was aborted)."""
        self.applied_index = decode_u64(self.keyspace.get(self.scope.applied_key))
        self._note_locks()
        self.max_now_ms = decode_u64(self.keyspace.get(self.scope.now_key))
        self._expiry_position = self.scope.meta_bounds()[0]
        self._reclaim_position = self._expiry_position
        self.hints = WorkHints()  # the range or the records changed: known again by laps

    def _note_locks(self) -> None:
        """Look whether the scope holds any transaction lock (one short scan): while it
        holds none, client commands skip the lock check. Only a `TXN_LOCK_COMMANDS`
        entry, an image or a split or merge (which reload) add or remove locks."""
        self._locks_possible = has_locks(self.keyspace, self.scope)

    @property
    def may_hold_locks(self) -> bool:
        """Whether the scope may hold a transaction lock (False: surely none)."""
        return self._locks_possible

    @property
    def durable(self) -> bool:
        """Whether the state (with its applied index) survives a restart: then the Raft
        driver compacts the log without an image and makes one only for a follower."""
        return self.keyspace.durable

    # -- the StateMachine protocol ---------------------------------------------------

    def apply(self, index: int, data: bytes) -> Reply:
        """Apply the committed command entry at `index`, atomically with the applied
        index; its reply."""
        return self.apply_many([(index, data)])[0]

    def apply_many(
        self, entries: Sequence[tuple[int, bytes]], *, in_range: bool = False
    ) -> list[Reply]:
        """Apply consecutive committed command entries `(index, data)`; their replies.

        The same replies and state as `apply` on each in turn, but in one keyspace
        transaction (one LMDB commit for a whole Ready instead of one per entry): each
        command still runs in its own batch, so a failing command's writes are discarded
        and the others kept, and the applied index and time are written once, at the end.
        `in_range`: the caller has checked every entry's keys against the scope (a region
        driver does, against its current range), so they are not checked again.
        """
        if not entries:
            return []
        before = (self.applied_index, self.max_now_ms)
        try:
            with self.keyspace.transaction():
                return self.apply_many_within(entries, in_range=in_range)
        except BaseException:
            # The transaction is gone (an LMDB one takes every command with it).
            self._set_progress(*before)
            raise

    def apply_many_within(
        self, entries: Sequence[tuple[int, bytes]], *, in_range: bool = False
    ) -> list[Reply]:
        """`apply_many` inside a transaction the caller opened (for LMDB,
        `with keyspace.group(wtx):`), which must commit or abort everything together.

        The driver applies a Ready's entries, a split or merge and the region records in
        one write transaction this way. If that transaction is aborted after this returns,
        call `reload()`: the in-memory applied index is ahead of the keyspace.
        """
        self._check_live()
        if not entries:
            return []
        before = (self.applied_index, self.max_now_ms)
        replies: list[Reply] = []
        try:
            for index, data in entries:
                replies.append(self._apply_in_batch(index, data, in_range))
            self.write_progress()
        except BaseException:
            self._set_progress(*before)
            raise
        finally:
            self._decoded.clear()
        return replies

    def decode(self, data: bytes) -> tuple[str, list[bytes], int]:
        """`decode_command(data)`, remembered until the end of the next apply: a region's
        driver decodes a Ready's entries to check their keys against its range just
        before the machine applies them."""
        decoded = self._decoded.get(data)
        if decoded is None:
            if len(self._decoded) >= _DECODED_MAX:
                self._decoded.clear()
            decoded = self._decoded[data] = decode_command(data)
        return decoded

    def take_events(self, index: int) -> list[Event]:
        """The keyspace notifications applying entry `index` recorded (empty if none or
        not collecting), forgotten here: the replica's observer takes them after each
        entry, and the region's leader publishes them."""
        if not self.events:
            return []
        return self.events.pop(index, [])

    def write_progress(self) -> None:
        """Store the in-memory applied index and time in one batch."""
        with write_batch(self.keyspace) as batch:
            self._write_progress(batch, self.applied_index, self.max_now_ms)

    def check_command(self, name: str, args: Sequence[bytes]) -> None:
        """Raise `KeyOutOfRangeError` if command `name` names a key (or a SCAN cursor)
        outside the machine's range: what a driver checks before proposing."""
        if not self.scope.is_region:
            return
        spec = _internal_spec(name)
        if spec is None or not spec.arity_ok(len(args) + 1):
            return
        self.scope.check_keys(spec.keys([name.encode(), *args]))
        if spec.name == "scan":
            position = cursor_range_key(args[0])
            if position is not None:
                self.scope.check_position(position)

    def key_count(self) -> int:
        """How many Redis keys the scope holds (expired ones not yet deleted included)."""
        return Db(self.keyspace, None, 0, self.scope).key_count()

    def slot_key_count(self, slot: int) -> int | None:
        """How many Redis keys of `slot` the region holds (CLUSTER COUNTKEYSINSLOT); None
        for the whole keyspace's machine, which keeps no per-slot counts."""
        return Db(self.keyspace, None, 0, self.scope).slot_key_count(slot)

    def snapshot(self) -> bytes:
        """The scope's records as one image: the whole keyspace as one msgpack image, or a
        region's range and system records as `cairn.store.ranges` frames."""
        self._check_live()
        if self.scope.is_region:
            return self.images.snapshot(self.scope)
        flat: list[bytes] = []
        start = b""
        while rows := self.keyspace.scan(start, None, _SNAPSHOT_CHUNK):
            for key, value in rows:
                flat += (key, value)
            start = rows[-1][0] + b"\x00"
        return bytes(msgpack.packb([_SNAPSHOT_VERSION, flat], use_bin_type=True))

    def restore(self, data: bytes) -> None:
        """Replace the scope's state by a `snapshot()` image (the rest of the keyspace is
        untouched); empty data is the empty state (the snapshot a group is founded with)."""
        self._check_live()
        if self.scope.is_region:
            self.images.restore(self.scope, data)
            self.reload()
            return
        version, flat = msgpack.unpackb(data, raw=False) if data else (_SNAPSHOT_VERSION, [])
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown store snapshot version {version}")
        with write_batch(self.keyspace) as batch:
            batch.clear()
            for i in range(0, len(flat), 2):
                batch.put(flat[i], flat[i + 1])
        self.reload()

    # -- commands --------------------------------------------------------------------

    def _apply_in_batch(self, index: int, data: bytes, in_range: bool) -> Reply:
        """One entry inside `apply_many`'s transaction (progress is written at its end).

        A command that fails (an error reply) leaves no trace but the applied index."""
        try:
            name, args, now_ms = self.decode(data)
        except ValueError:
            self._set_progress(index, self.max_now_ms)
            return ErrorReply("ERR malformed command entry")
        now_ms = max(now_ms, self.max_now_ms, 0)
        spec = _spec_for_apply(name, args)
        if isinstance(spec, ErrorReply):
            self._set_progress(index, now_ms)
            return spec
        if (
            self.scope.is_region
            and (not in_range or spec.name in TXN_LOCK_COMMANDS)
            and not self._in_range(spec, args)
        ):  # the transactions' handlers, unlike cairn.exec's and cairn.effects', never
            # look at the scope: checked here whatever the caller did (a few keys)
            self._set_progress(index, now_ms)
            return KEY_NOT_IN_REGION
        if self._locks_possible and _lock_checked(spec):
            locked = lock_error(self.keyspace, spec.keys([spec.name.encode(), *args]), now_ms)
            if locked is not None:
                self._set_progress(index, now_ms)
                return locked
        hints = entry_hints(spec.name, args)
        if hints:
            self.hints.note(hints)
        events: list[Event] | None = [] if self.collect_events else None
        if spec.name == TXN_COMMAND:
            reply = apply_transaction(self.keyspace, self.scope, index, now_ms, args[0], events)
        elif spec.name == EFFECTS_COMMAND:  # a script's effects: cairn.store.scripting.effects
            reply = apply_effects(self.keyspace, self.scope, index, now_ms, args[0], events)
        elif spec.name in IDEMPOTENCY_COMMANDS:  # IDEMPOTENT: cairn.store.idempotency
            reply = apply_idempotency(
                self.keyspace, self.scope, index, now_ms, spec.name, args, events
            )
            if spec.name in (TXN_LOCK_COMMAND, TXN_COMMIT_COMMAND):  # they lock, unlock
                self._note_locks()
        else:
            stamp = encode_stamp(self.scope.region_id or 0, index)
            reply = run_in_batch(
                self.keyspace, spec, args, now_ms, self.scope, stamp, index, events
            )
            if spec.name in TXN_LOCK_COMMANDS:
                self._note_locks()
        if events:
            if len(self.events) >= _EVENTS_MAX:
                self.events.clear()  # nobody is taking them: keep the memory bounded
            self.events[index] = events
        self._set_progress(index, now_ms)
        return reply

    def execute_read(
        self,
        name: str,
        args: Sequence[bytes],
        now_ms: int,
        *,
        in_range: bool = False,
        settings: ObjectSettings = DEFAULT_SETTINGS,
    ) -> Reply:
        """Run a read-only command against the applied state at `now_ms`; `in_range`: the
        caller has checked that its keys lie in the scope (routed under the current epoch
        a moment ago), so they are not checked again. `settings`: the serving node's
        OBJECT settings (CONFIG's encoding thresholds and eviction policy)."""
        self._check_live()
        spec = COMMANDS.get(name)
        if spec is None or spec.is_write:
            return ErrorReply(f"ERR '{name}' is not a read-only command")
        if not spec.arity_ok(len(args) + 1):
            return arity_error(spec.name)
        if not in_range and self.scope.is_region and not self._in_range(spec, args):
            return KEY_NOT_IN_REGION
        if self._locks_possible and not self.reads_ignore_locks:
            locked = lock_error(self.keyspace, spec.keys([spec.name.encode(), *args]), now_ms)
            if locked is not None:
                return locked
        try:
            db = Db(self.keyspace, None, now_ms, self.scope, lookups=self.lookups)
            return run(spec, db, args, self._rng, settings=settings)
        except CommandError as err:
            return err.reply
        except KeyOutOfRangeError:
            return KEY_NOT_IN_REGION

    def effective_now(self, local_ms: int) -> int:
        """The time to stamp a proposal (or serve a read) with: never before applied time."""
        return max(local_ms, self.max_now_ms)

    def expired_keys(self, now_ms: int, limit: int) -> list[bytes]:
        """Up to `limit` keys expired at `now_ms`, for the leader to delete by proposing
        `EXPIRE_DELETE`. Each call samples the next stretch of the keyspace (about
        20 x `limit` keys, wrapping around), like Redis' incremental active expiry. A
        scope known to hold no key with a TTL (`hints.expiry`: a whole lap met none and
        no entry since may have set one), or none due before `now_ms` (such a lap met
        only later deadlines), answers at once, without a read."""
        self._check_live()
        lap = self.hints.expiry
        if lap.idle_at(now_ms):
            return []
        db = Db(self.keyspace, None, now_ms, self.scope)
        if self._expiry_position <= db.start_position:
            lap.lap_begins()
        entries = db.walk(self._expiry_position, limit * _EXPIRY_SAMPLE_FACTOR)
        deadlines = [e.meta.expire_ms for e in entries if e.meta.expire_ms is not None]
        if deadlines:
            lap.met(min(deadlines))
        found = [e for e in entries if e.meta.expired(now_ms)]
        if self._locks_possible:  # a locked key is its transaction's (`Db.purge_if_expired`)
            found = [e for e in found if not is_locked(self.keyspace, e.key)]
        found = found[:limit]
        if len(found) == limit:
            self._expiry_position = found[-1].position + b"\x00"
        elif len(entries) == limit * _EXPIRY_SAMPLE_FACTOR:
            self._expiry_position = entries[-1].position + b"\x00"
        else:
            self._expiry_position = db.start_position
            lap.lap_ends()
        return [e.key for e in found]

    def reclaimable_streams(self, now_ms: int, limit: int) -> list[bytes]:
        """Up to `limit` streams with trimmed records left to delete, for the leader to
        name in its `cairn.reclaim` steps (`cairn.runtime.reclaimer`). Each call walks
        the next stretch of about 20 x `limit` keys, wrapping around (`stream_laps`), like
        `expired_keys`; a stream with much left is named again until it is done. A scope
        known to hold no trimmed stream (`hints.streams`, as for `expired_keys`) answers
        at once, without a read."""
        self._check_live()
        lap = self.hints.streams
        if lap.idle_at(now_ms):
            return []
        db = Db(self.keyspace, None, now_ms, self.scope)
        if self._reclaim_position <= db.start_position:
            lap.lap_begins()
        entries = db.walk(self._reclaim_position, limit * _EXPIRY_SAMPLE_FACTOR)
        found = [e for e in entries if needs_reclaim(e.meta)][:limit]
        if found:
            lap.met()
        if len(found) == limit:
            self._reclaim_position = found[0].position
        elif len(entries) == limit * _EXPIRY_SAMPLE_FACTOR:
            self._reclaim_position = entries[-1].position + b"\x00"
        else:
            self._reclaim_position = db.start_position
            self.stream_laps += 1
            lap.lap_ends()
        return [e.key for e in found]

    @property
    def may_hold_trimmed_streams(self) -> bool:
        """Whether `reclaimable_streams` may find anything (False: surely nothing)."""
        return self.hints.streams.possible

    @property
    def may_hold_statuses(self) -> bool:
        """Whether the scope may hold a transaction status record (False: surely none):
        read again (one short scan) only after an entry that may have written or deleted
        one (`hints`), so the leader's look at stale records costs nothing without."""
        if self.hints.statuses_dirty:
            self._check_live()
            self._statuses_possible = (
                next(iter_statuses(self.keyspace, self.scope), None) is not None
            )
            self.hints.statuses_dirty = False
        return self._statuses_possible

    def has_expired_requests(self, now_ms: int) -> bool:
        """Whether the request table (IDEMPOTENT) holds ids expired at `now_ms`: then
        the leader proposes their purge (`cairn.store.idempotency_entries.PURGE_COMMAND`).
        The table's earliest expiry is read again only after an entry that changed the
        table (`hints`): a region without tagged writes answers without a read."""
        self._check_live()
        if self.hints.requests_dirty:
            self._request_due = earliest_request_expiry(self.keyspace, self.scope)
            self.hints.requests_dirty = False
        return self._request_due is not None and self._request_due <= now_ms

    def has_garbage(self) -> bool:
        """Whether the scope holds deleted large values whose records are not reclaimed
        yet: then the leader proposes `cairn.store.reclaim.RECLAIM_COMMAND` steps (as it
        does for the streams `reclaimable_streams` finds)."""
        self._check_live()
        return has_garbage(self.keyspace, self.scope)

    # -- internals -------------------------------------------------------------------

    def _write_progress(self, batch: WriteBatch, index: int, now_ms: int) -> None:
        batch.put(self.scope.applied_key, encode_u64(index))
        batch.put(self.scope.now_key, encode_u64(now_ms))

    def _in_range(self, spec: CommandSpec, args: Sequence[bytes]) -> bool:
        try:
            self.scope.check_keys(spec.keys([spec.name.encode(), *args]))
        except KeyOutOfRangeError:
            return False
        return True

    def _check_live(self) -> None:
        if self.retired:
            raise RetiredMachineError("this region was merged into its neighbour")

    def _set_progress(self, index: int, now_ms: int) -> None:
        self.applied_index = index
        self.max_now_ms = now_ms
