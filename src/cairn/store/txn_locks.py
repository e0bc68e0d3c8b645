"""Cross-region transactions, the store half: lock and status records, the five internal
commands that read and write them, and the lock check every client command passes.

Theory of operation (the shared interface is `TXN_SPEC.md`, sections 1 to 3). Cairn's
store keeps one version per key, so a transaction spanning regions is Percolator with
pessimistic locks (TiKV's pessimistic transactions): its coordinator (`cairn.runtime`)
locks every key it touches, reading their values in the same entry (`LOCK_COMMAND`),
computes the result on a scratch machine (`cairn.store.txn_scratch`), stores each changed
key's effect in its lock (`PREWRITE_COMMAND`), commits the primary key's region
(`COMMIT_COMMAND` with is_primary 1: the effects applied, the locks dropped and a
committed status record written, all in ONE entry: the transaction's commit point), then
the other regions. `ROLLBACK_COMMAND` drops locks; `STATUS_COMMAND` tells another
transaction (or a reader that met a lock) whether a lock's owner committed, rolled back,
or is alive, rolling back an owner whose primary lock outlived its ttl (TiKV's
check_txn_status).

Async commit (docs/transactions.md, "Async commit"): a prewrite may mark a key
"prewritten, unchanged" (kind 2) and, in the primary's region, list the transaction's
other keys (`secondaries`), kept in the primary's lock; `STATUS_COMMAND` never rolls such
a primary back on its ttl but answers ``async`` with that list, and
`CHECK_SECONDARIES_COMMAND` (TiKV's CheckSecondaryLocks) tells, per key, prewritten /
rolled back now (locked, not prewritten: so the transaction can no longer commit) /
missing; the resolver then commits or rolls back the primary.

Records (`cairn.store.txn_records`, `cairn.store.layout`): a lock ``L | slot | key`` ->
``[1, start_ts, primary, ttl_ms, locked_at_ms, effect]`` (version 2 adds the
secondaries); a status
``S | slot | primary | start_ts`` -> ``[1, state, commit_ts, at_ms]``. Both live with
their key's range (`cairn.store.ranges`), so splits, merges, snapshots and region drops
carry them. Each command is an ordinary handler run in the entry's one batch: a refusal
checks everything before writing anything, and a commit applies its effects through the
real RESTORE and DEL handlers on the entry's `Db`, so stamps (WATCH), key counts, the
graveyard and notifications are exactly RESTORE's and DEL's; the node wakes blocked
clients from the commit's keys (`COMMIT_COMMAND`'s key finder names them).

Lock check (`lock_error`): the machine looks up the ``L`` record of each key of every
command it runs for a client (and of `cairn.exec`, `cairn.watch`, `cairn.idem`), one
keyspace get per key, while its scope holds any lock at all (`has_locks`, looked at once
after each of these commands and at every reload: a region without locks pays nothing),
and answers ``-LOCKED <start_ts> <ttl_remaining_ms> <hex primary> <hex key>`` for a
locked key without running the command; the node resolves the lock and retries. Active
expiry leaves a locked key alone (`Db.purge_if_expired`, `StoreMachine.expired_keys`).

Status records are removed `txn_status_retention_ms` after they were written by the
region's leader, proposing `GC_COMMAND` entries naming the stale records its walk found
(`stale_statuses`, `cairn.runtime.reclaimer`), each deleting at most `GC_BATCH` records
still stale at its own time.

Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.resp.reply import NULL, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands import CommandError, CommandSpec
from cairn.store.commands.dump import cmd_restore, serialize
from cairn.store.commands.keys import cmd_del
from cairn.store.commands.spec import Ctx, internal_write
from cairn.store.db import Db
from cairn.store.encodings import DEFAULT_SETTINGS
from cairn.store.keyspace import KeyspaceReader
from cairn.store.layout import (
    STATUS_TAG,
    STATUS_TS_LEN,
    lock_key,
    split_status_key,
    status_key,
    status_range_key,
)
from cairn.store.ranges import iter_locks
from cairn.store.rdb import STREAM_TYPES, BadPayloadError, decode, object_type, verify_footer
from cairn.store.rdb_stream import load_stream
from cairn.store.scope import Scope
from cairn.store.transaction import fingerprint
from cairn.store.txn_records import (
    COMMITTED,
    KIND_DELETE,
    KIND_RESTORE,
    KIND_UNCHANGED,
    ROLLED_BACK,
    Effect,
    Lock,
    Status,
    decode_lock,
    decode_status,
    read_lock,
    read_status,
)

__all__ = [
    "CHECK_SECONDARIES_COMMAND",
    "COMMITTED",
    "COMMIT_COMMAND",
    "GC_BATCH",
    "GC_COMMAND",
    "LOCK_COMMAND",
    "MAX_SECONDARIES",
    "PREWRITE_COMMAND",
    "ROLLBACK_COMMAND",
    "ROLLED_BACK",
    "STATUS_COMMAND",
    "SWEEP_BATCH",
    "TXN_LOCK_COMMANDS",
    "Lock",
    "Status",
    "expired_locks",
    "has_locks",
    "is_locked",
    "lock_error",
    "read_lock",
    "read_status",
    "stale_statuses",
]

LOCK_COMMAND = "cairn.txn.lock"
PREWRITE_COMMAND = "cairn.txn.prewrite"
COMMIT_COMMAND = "cairn.txn.commit"
ROLLBACK_COMMAND = "cairn.txn.rollback"
STATUS_COMMAND = "cairn.txn.status"
CHECK_SECONDARIES_COMMAND = "cairn.txn.check_secondaries"
"""``cairn.txn.check_secondaries <start_ts> <key>...``: async commit's secondaries check."""
GC_COMMAND = "cairn.txn.gc"
"""``cairn.txn.gc <retention_ms> (<primary> <start_ts>)...``: delete the named status
records that are `retention_ms` old at the entry's time; the number deleted."""

GC_BATCH = 256
"""Status records one `GC_COMMAND` entry names at most."""

_TS_LIMIT = 1 << 63
"""Timestamps and times are below 2^63: they come back as RESP integers."""
TTL_LIMIT = 1 << 32
"""A lock's ttl is below 2^32 ms (about 49 days), so its expiry stays a RESP integer."""

_OK = Array((Bulk(b"ok"),))
_ROLLED_BACK_REPLY = Array((Bulk(b"rolledback"),))


# -- records (`cairn.store.txn_records`) -------------------------------------------------


def is_locked(reader: KeyspaceReader, key: bytes) -> bool:
    """Whether `key` holds a lock."""
    return reader.get(lock_key(key)) is not None


def has_locks(reader: KeyspaceReader, scope: Scope) -> bool:
    """Whether `scope` holds any lock record (one short scan)."""
    return next(iter_locks(reader, scope), None) is not None


def lock_error(reader: KeyspaceReader, keys: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    """The ``-LOCKED`` reply for the first of `keys` holding a lock (one get per key),
    or None when none does (module docstring)."""
    for key in keys:
        raw = reader.get(lock_key(key))
        if raw is not None:
            lock = decode_lock(raw)
            return ErrorReply(
                f"LOCKED {lock.start_ts} {lock.remaining_ms(now_ms)} "
                f"{lock.primary.hex()} {key.hex()}"
            )
    return None


# -- argument parsing ----------------------------------------------------------------------


def _bad(message: str) -> CommandError:
    return CommandError(ErrorReply(f"ERR {message}"))


def _number(arg: bytes, what: str, limit: int = _TS_LIMIT) -> int:
    """A decimal ASCII number in ``[0, limit)``; an error reply for anything else."""
    if not (0 < len(arg) <= 19 and arg.isdigit()):
        raise _bad(f"invalid {what}")
    value = int(arg)
    if value >= limit:
        raise _bad(f"{what} out of range")
    return value


def _flag(arg: bytes) -> bool:
    if arg not in (b"0", b"1"):
        raise _bad("invalid is_primary")
    return arg == b"1"


@dataclass(frozen=True, slots=True)
class LockRequest:
    """A parsed `LOCK_COMMAND`."""

    start_ts: int
    primary: bytes
    ttl_ms: int
    max_bytes: int
    watches: list[tuple[bytes, bytes]]
    keys: list[bytes]

    def every_key(self) -> list[bytes]:
        """Every key locked: the watched ones and the others, each once."""
        return list(dict.fromkeys([key for key, _ in self.watches] + self.keys))


def parse_lock(args: Sequence[bytes]) -> LockRequest:
    """`cairn.txn.lock <start_ts> <primary> <ttl_ms> <max_bytes> <nwatch>
    [<key> <fingerprint>]*nwatch <key> ...` (without the name)."""
    if len(args) < 5:
        raise _bad("wrong number of arguments for cairn.txn.lock")
    start_ts = _number(args[0], "start_ts")
    ttl_ms = _number(args[2], "ttl_ms", TTL_LIMIT)
    max_bytes = _number(args[3], "max_bytes")
    nwatch = _number(args[4], "nwatch", (len(args) - 5) // 2 + 1)
    end = 5 + 2 * nwatch
    watches = [(args[i], args[i + 1]) for i in range(5, end, 2)]
    keys = list(args[end:])
    if not watches and not keys:
        raise _bad("cairn.txn.lock names no key")
    return LockRequest(start_ts, args[1], ttl_ms, max_bytes, watches, keys)


MAX_SECONDARIES = 1 << 16
"""The most secondaries one async-commit primary may list (the coordinator's own limit,
`limits.async_commit_max_keys`, is far lower): a hostile count is refused before use."""


@dataclass(frozen=True, slots=True)
class PrewriteRequest:
    """A parsed `PREWRITE_COMMAND`."""

    start_ts: int
    effects: list[tuple[bytes, Effect]]
    secondaries: tuple[bytes, ...] | None
    """Async commit: the transaction's other locked keys, kept in the primary's lock (the
    first key of this entry); None: a two-phase commit's prewrite."""


def parse_prewrite(args: Sequence[bytes]) -> PrewriteRequest:
    """`cairn.txn.prewrite <start_ts> <n> [<key> <kind> <pexpireat_ms> <payload>]*n
    [<m> <secondary>*m]`; a restore's payload must be a DUMP RESTORE accepts, an unchanged
    marker (kind 2) is stored with no expiry and no payload."""
    if len(args) < 2:
        raise _bad("wrong number of arguments for cairn.txn.prewrite")
    start_ts = _number(args[0], "start_ts")
    count = _number(args[1], "n", (len(args) - 2) // 4 + 1)
    end = 2 + 4 * count
    if count == 0 or len(args) < end:
        raise _bad("wrong number of arguments for cairn.txn.prewrite")
    secondaries = None
    if len(args) > end:
        limit = min(len(args) - end, MAX_SECONDARIES + 1)
        listed = _number(args[end], "secondaries count", limit)
        if len(args) != end + 1 + listed:
            raise _bad("wrong number of arguments for cairn.txn.prewrite")
        secondaries = tuple(args[end + 1 :])
    effects = []
    for i in range(2, end, 4):
        kind = _number(args[i + 1], "kind", 3)
        pexpireat = _number(args[i + 2], "pexpireat_ms")
        payload = args[i + 3]
        if kind == KIND_RESTORE:
            _check_payload(payload)
        elif kind == KIND_UNCHANGED:
            pexpireat = 0
        effects.append((args[i], (kind, pexpireat, payload if kind == KIND_RESTORE else b"")))
    return PrewriteRequest(start_ts, effects, secondaries)


def _check_payload(payload: bytes) -> None:
    """An error reply unless RESTORE would load `payload` (so a commit cannot fail)."""
    if not verify_footer(payload):
        raise _bad("DUMP payload version or checksum are wrong")
    try:
        if object_type(payload) in STREAM_TYPES:
            load_stream(payload)
        else:
            decode(payload)
    except (BadPayloadError, ValueError):
        raise _bad("Bad data format") from None


def _parse_keys(args: Sequence[bytes], at: int, what: str) -> list[bytes]:
    keys = list(args[at:])
    if not keys:
        raise _bad(f"wrong number of arguments for {what}")
    return keys


# -- the commands --------------------------------------------------------------------------


def _view(ctx: Ctx) -> Db:
    """A read-only view of the entry's state (reads that must not purge expired keys)."""
    return Db(ctx.db.records, None, ctx.now_ms, ctx.db.scope)


def _owned(lock: Lock | None, start_ts: int) -> bool:
    return lock is not None and lock.start_ts == start_ts


def cmd_lock(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`LOCK_COMMAND`: lock every key and read the values (TXN_SPEC 2.1)."""
    req = parse_lock(args)
    records = ctx.db.records
    every = req.every_key()
    held: set[bytes] = set()
    for key in every:
        lock = read_lock(records, key)
        if lock is not None and lock.start_ts != req.start_ts:
            remaining = Integer(lock.remaining_ms(ctx.now_ms))
            return Array(
                (Bulk(b"locked"), Bulk(key), Bulk(lock.primary), Integer(lock.start_ts), remaining)
            )
        if lock is not None:
            held.add(key)
    view = _view(ctx)
    for key, recorded in req.watches:
        if fingerprint(view, key) != recorded:
            return Array((Bulk(b"watch"),))
    if req.primary in every:
        status = read_status(records, req.primary, req.start_ts)
        if status is not None and status.state == ROLLED_BACK:
            return _ROLLED_BACK_REPLY
    values = _read_values(view, req.keys, req.max_bytes)
    if values is None:
        return Array((Bulk(b"toolarge"),))
    batch = ctx.db.record_writer()
    fresh = Lock(req.start_ts, req.primary, req.ttl_ms, ctx.now_ms).encode()
    for key in every:
        if key not in held:
            batch.put(lock_key(key), fresh)
    return Array((Bulk(b"ok"), Array(tuple(values))))


def _read_values(view: Db, keys: Sequence[bytes], max_bytes: int) -> list[Reply] | None:
    """[exists, pexpireat_ms, dump or nil] of each key, or None once the DUMPs together
    exceed `max_bytes`."""
    total = 0
    seen: dict[bytes, Reply] = {}
    values: list[Reply] = []
    for key in keys:
        value = seen.get(key)
        if value is None:
            meta = view.lookup(key)
            if meta is None:
                value = Array((Integer(0), Integer(0), NULL))
            else:
                dump = serialize(view, key, meta, DEFAULT_SETTINGS)
                total += len(dump)
                if total > max_bytes:
                    return None
                value = Array((Integer(1), Integer(meta.expire_ms or 0), Bulk(dump)))
            seen[key] = value
        values.append(value)
    return values


def cmd_prewrite(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`PREWRITE_COMMAND`: store the effects in the transaction's locks, and an async
    commit's secondaries in its primary's lock (TXN_SPEC 2.2)."""
    req = parse_prewrite(args)
    records = ctx.db.records
    locks: dict[bytes, Lock] = {}
    for key, _ in req.effects:
        lock = read_lock(records, key)
        if lock is None or lock.start_ts != req.start_ts:
            return Array((Bulk(b"lost"), Bulk(key)))
        locks[key] = lock
    first = req.effects[0][0]
    if req.secondaries is not None and locks[first].primary != first:
        raise _bad("cairn.txn.prewrite lists secondaries only with the primary, first")
    batch = ctx.db.record_writer()
    for key, effect in req.effects:
        lock = locks[key]
        listed = req.secondaries if key == first else lock.secondaries
        locks[key] = Lock(
            lock.start_ts, lock.primary, lock.ttl_ms, lock.locked_at_ms, effect, listed
        )
    for key, lock in locks.items():
        batch.put(lock_key(key), lock.encode())
    return _OK


def cmd_commit(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`COMMIT_COMMAND`: apply the effects, drop the locks, mark the primary committed
    (TXN_SPEC 2.3)."""
    if len(args) < 3:
        raise _bad("wrong number of arguments for cairn.txn.commit")
    start_ts = _number(args[0], "start_ts")
    commit_ts = _number(args[1], "commit_ts")
    is_primary = _flag(args[2])
    keys = _parse_keys(args, 3, COMMIT_COMMAND)
    records = ctx.db.records
    if is_primary and not _owned(read_lock(records, keys[0]), start_ts):
        status = read_status(records, keys[0], start_ts)
        return _OK if status is not None and status.state == COMMITTED else _ROLLED_BACK_REPLY
    for key in dict.fromkeys(keys):
        lock = read_lock(records, key)
        if lock is None or lock.start_ts != start_ts:
            continue
        if lock.effect is not None and lock.effect[0] != KIND_UNCHANGED:
            _apply_effect(ctx, key, lock.effect)
        ctx.db.record_writer().delete(lock_key(key))
    if is_primary:
        status = Status(COMMITTED, commit_ts, ctx.now_ms)
        ctx.db.record_writer().put(status_key(keys[0], start_ts), status.encode())
    return _OK


def _apply_effect(ctx: Ctx, key: bytes, effect: Effect) -> None:
    """Apply a prewritten effect exactly as ``RESTORE key <pexpireat> payload REPLACE
    ABSTTL`` or ``DEL key`` would, on the entry's `Db`."""
    kind, pexpireat, payload = effect
    if kind == KIND_DELETE:
        cmd_del(Ctx(ctx.db, ctx.now_ms, "del", None, ctx.seed), [key])
        return
    argv = [key, b"%d" % pexpireat, payload, b"REPLACE", b"ABSTTL"]
    cmd_restore(Ctx(ctx.db, ctx.now_ms, "restore", None, ctx.seed), argv)


def cmd_rollback(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`ROLLBACK_COMMAND`: drop the transaction's locks, mark the primary rolled back
    (TXN_SPEC 2.4)."""
    if len(args) < 3:
        raise _bad("wrong number of arguments for cairn.txn.rollback")
    start_ts = _number(args[0], "start_ts")
    is_primary = _flag(args[1])
    keys = _parse_keys(args, 2, ROLLBACK_COMMAND)
    status = read_status(ctx.db.records, keys[0], start_ts) if is_primary else None
    if status is not None and status.state == COMMITTED:
        return Array((Bulk(b"committed"), Integer(status.commit_ts)))
    _drop_locks(ctx, start_ts, keys)
    if is_primary and status is None:
        _write_rolled_back(ctx, keys[0], start_ts)
    return _OK


def _drop_locks(ctx: Ctx, start_ts: int, keys: Sequence[bytes]) -> None:
    records = ctx.db.records
    for key in dict.fromkeys(keys):
        if _owned(read_lock(records, key), start_ts):
            ctx.db.record_writer().delete(lock_key(key))


def _write_rolled_back(ctx: Ctx, primary: bytes, start_ts: int) -> None:
    status = Status(ROLLED_BACK, 0, ctx.now_ms)
    ctx.db.record_writer().put(status_key(primary, start_ts), status.encode())


def cmd_status(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`STATUS_COMMAND`: TiKV's check_txn_status (TXN_SPEC 2.5)."""
    primary = args[0]
    start_ts = _number(args[1], "start_ts")
    records = ctx.db.records
    status = read_status(records, primary, start_ts)
    if status is not None:
        if status.state == COMMITTED:
            return Array((Bulk(b"committed"), Integer(status.commit_ts)))
        return Array((Bulk(b"rolledback"), Integer(0)))
    lock = read_lock(records, primary)
    if lock is not None and lock.start_ts == start_ts:
        remaining = lock.remaining_ms(ctx.now_ms)
        if lock.secondaries is not None:  # async commit: its fate is in its secondaries
            listed = Array(tuple(Bulk(key) for key in lock.secondaries))
            return Array((Bulk(b"async"), Integer(remaining), listed))
        if remaining > 0:
            return Array((Bulk(b"alive"), Integer(remaining)))
        ctx.db.record_writer().delete(lock_key(primary))
    _write_rolled_back(ctx, primary, start_ts)
    return Array((Bulk(b"rolledback"), Integer(0)))


def cmd_check_secondaries(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`CHECK_SECONDARIES_COMMAND` (TiKV's CheckSecondaryLocks): each key's state for
    transaction `start_ts`, all in this one entry: `prewritten`; `rolledback` (locked but
    not prewritten: the lock is dropped now, so the coordinator's prewrite answers `lost`
    and the transaction can no longer commit); `missing` (no lock of it)."""
    if not 2 <= len(args) <= MAX_SECONDARIES + 1:
        raise _bad("wrong number of arguments for cairn.txn.check_secondaries")
    start_ts = _number(args[0], "start_ts")
    records = ctx.db.records
    states: dict[bytes, Bulk] = {}
    for key in args[1:]:
        if key in states:
            continue
        lock = read_lock(records, key)
        if lock is None or lock.start_ts != start_ts:
            states[key] = _MISSING
        elif lock.prewritten:
            states[key] = _PREWRITTEN
        else:
            ctx.db.record_writer().delete(lock_key(key))
            states[key] = _CHECK_ROLLED_BACK
    return Array((Bulk(b"ok"), Array(tuple(states[key] for key in args[1:]))))


_PREWRITTEN = Bulk(b"prewritten")
_CHECK_ROLLED_BACK = Bulk(b"rolledback")
_MISSING = Bulk(b"missing")


# -- status records' garbage collection ----------------------------------------------------


def cmd_gc(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`GC_COMMAND`: delete the named status records that are stale at this entry's time
    (a record rewritten since the leader looked is checked again); how many."""
    retention = _number(args[0], "retention_ms")
    if len(args) % 2 != 1 or len(args) > 1 + 2 * GC_BATCH:
        raise _bad("wrong number of arguments for cairn.txn.gc")
    records = ctx.db.records
    deleted = 0
    for i in range(1, len(args), 2):
        where = status_key(args[i], _number(args[i + 1], "start_ts"))
        raw = records.get(where)
        if raw is not None and decode_status(raw).at_ms + retention <= ctx.now_ms:
            ctx.db.record_writer().delete(where)
            deleted += 1
    return Integer(deleted)


def stale_statuses(
    reader: KeyspaceReader,
    scope: Scope,
    now_ms: int,
    retention_ms: int,
    position: bytes,
    limit: int = GC_BATCH,
) -> tuple[list[tuple[bytes, int]], bytes]:
    """Up to `limit` status records of `scope` that are `retention_ms` old at `now_ms`,
    as (primary, start_ts), from internal `position` on (b"": the start), and where the
    next look starts (b"": back to the start). A look reads at most 20 x `limit` records."""
    lo, hi = scope.field_bounds(STATUS_TAG)
    budget = limit * 20
    found: list[tuple[bytes, int]] = []
    rows = reader.scan(max(position, lo), hi, budget)
    for key, value in rows:
        if len(key) < 3 + STATUS_TS_LEN or not scope.contains(status_range_key(key)):
            continue
        if decode_status(value).at_ms + retention_ms <= now_ms:
            found.append(split_status_key(key))
            if len(found) == limit:
                return found, key + b"\x00"
    return found, (rows[-1][0] + b"\x00" if len(rows) == budget else b"")


SWEEP_BATCH = 64
"""Expired locks one look of `expired_locks` names at most."""


def expired_locks(
    reader: KeyspaceReader,
    scope: Scope,
    now_ms: int,
    grace_ms: int,
    position: bytes,
    limit: int = SWEEP_BATCH,
) -> tuple[list[tuple[bytes, Lock]], bytes]:
    """Up to `limit` locks of `scope` whose ttl ran out at least `grace_ms` before
    `now_ms`, as (user key, lock), from internal `position` on (b"": the start), and
    where the next look starts (b"": back to the start). A look reads at most 20 x
    `limit` records. The region leader resolves them (`cairn.runtime.reclaimer`), so a
    transaction whose coordinator died leaves no lock that outlives its status record."""
    budget = limit * 20
    found: list[tuple[bytes, Lock]] = []
    rows = list(itertools.islice(iter_locks(reader, scope, position), budget))
    for key, value in rows:
        lock = decode_lock(value)
        if lock.locked_at_ms + lock.ttl_ms + grace_ms <= now_ms:
            found.append((key[1 + 2 :], lock))
            if len(found) == limit:
                return found, key + b"\x00"
    return found, (rows[-1][0] + b"\x00" if len(rows) == budget else b"")


# -- the command table ---------------------------------------------------------------------


def _lock_keys(argv: Sequence[bytes]) -> list[bytes]:
    try:
        return parse_lock(argv[1:]).every_key()
    except CommandError:
        return []


def _prewrite_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys whose effects are prewritten (never the secondaries it lists: they lie in
    other regions)."""
    if len(argv) < 3 or not (0 < len(argv[2]) <= 19 and argv[2].isdigit()):
        return []
    end = 3 + 4 * int(argv[2])
    return list(argv[3:end:4]) if len(argv) >= end else []


def _keys_from(at: int) -> Callable[[Sequence[bytes]], list[bytes]]:
    def finder(argv: Sequence[bytes]) -> list[bytes]:
        return list(argv[at:])

    return finder


def _primary_key(argv: Sequence[bytes]) -> list[bytes]:
    return list(argv[1:2])


def _gc_keys(argv: Sequence[bytes]) -> list[bytes]:
    return list(argv[2::2])


def _internal(
    name: str,
    arity: int,
    handler: Callable[[Ctx, Sequence[bytes]], Reply],
    key_finder: Callable[[Sequence[bytes]], list[bytes]],
) -> CommandSpec:
    return internal_write(
        name,
        arity,
        handler,
        key_finder,
        "transactions",
        "Internal: part of a cross-region transaction.",
    )


TXN_LOCK_COMMANDS: dict[str, CommandSpec] = {
    LOCK_COMMAND: _internal(LOCK_COMMAND, -6, cmd_lock, _lock_keys),
    PREWRITE_COMMAND: _internal(PREWRITE_COMMAND, -7, cmd_prewrite, _prewrite_keys),
    COMMIT_COMMAND: _internal(COMMIT_COMMAND, -5, cmd_commit, _keys_from(4)),
    ROLLBACK_COMMAND: _internal(ROLLBACK_COMMAND, -4, cmd_rollback, _keys_from(3)),
    STATUS_COMMAND: _internal(STATUS_COMMAND, 3, cmd_status, _primary_key),
    GC_COMMAND: _internal(GC_COMMAND, -4, cmd_gc, _gc_keys),
    CHECK_SECONDARIES_COMMAND: _internal(
        CHECK_SECONDARIES_COMMAND, -3, cmd_check_secondaries, _keys_from(2)
    ),
}
"""The internal commands of cross-region transactions: not in `COMMANDS`, so no client
can send them; routed by their keys like `cairn.exec`, and never lock-checked."""
