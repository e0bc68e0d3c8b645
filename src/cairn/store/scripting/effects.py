"""Scripts replicated by their effects: run once on the region's leader, applied as records.

Theory of operation. EVAL (EVALSHA arrives as EVAL) and FCALL reach the region's leader
as writes. Instead of proposing the script, the leader runs it once (`run_for_effects`)
on its applied state, read linearizably (after its lease or a ReadIndex), through an
`OverlayKeyspace`: the script reads the real keyspace and its own writes, and writes only
to the overlay. The outcome is one of:

- `Answer`: the script wrote nothing (a read-only script, or one stopped by its budget
  with its writes discarded): its reply is the answer, no entry at all, as for a read;
- `Effects`: what it wrote, proposed as ONE internal entry ``cairn.effects <payload>``
  carrying the script's reply, its record writes (``M``, ``F``, ``G`` puts and deletes
  and the scope's deletion stamp), the key counts it changed as deltas, the keyspace
  notifications it raised, the keys it wrote (to wake blocked clients), and the
  fingerprint (`cairn.store.transaction.fingerprint`) of every key whose records it read
  or wrote;
- `Replay`: its writes cannot be vouched for by fingerprints (it called a command that
  names no key, such as DBSIZE, KEYS, SCAN or FLUSHALL, or read records no key accounts
  for): the leader proposes the script itself, which every replica runs as before.

A transaction (``cairn.exec``, MULTI/EXEC in one region) that queues a script is run the
same way (`run_transaction_for_effects`): its watched keys compared, then each queued
command in its own overlay batch (a failing command's writes discarded, as
`cairn.store.transaction.apply_transaction` does), the scripts among them with the
leader's reused Lua states; its effect is one ``cairn.effects`` entry whose reply is the
EXEC array, so no replica runs the script again. A watched key that changed answers the
null array at once (no entry: the run's read point is linearizable).

Apply (`apply_effects`): if any fingerprint differs from the one recorded, another entry
changed (or expired, or deleted, or created) a key the script depended on between the run
and the apply: the entry writes nothing and answers `STALE`, and the leader runs the
script again (a bounded number of times, then it proposes the script itself: progress is
guaranteed under contention). Otherwise the records are written as they are: no replica
runs Lua. Equal fingerprints mean every key the script touched is as it was when the
script ran (each write leaves a new stamp, each deletion moves the region's deletion
stamp), so the records the script wrote are exactly what running it at this index would
write, but for two things fixed at apply. An effects fingerprint (`effects_fingerprint`)
is WATCH's plus one thing WATCH does not need: whether an expired key's record is still
stored. A key created by another entry between the run and the apply and expired by the
apply looks absent to WATCH, as it did to the run, yet its record is there and counted:
applying the run's records over it would replace that record and count the key again
(and leave the old value's fields behind). So such an entry is stale too, and the run
again purges the expired key as any write does. The two things fixed at apply:

- stamps: the run does not know its entry's index, so it stamps with `PLACEHOLDER_STAMP`;
  the apply rewrites it, in every metadata record and in the deletion stamp record, with
  `encode_stamp(region, index)`, as if the script had run in this entry;
- key counts: other entries may have created or deleted other keys in between, so the
  counts travel as deltas and are added to the values found at apply.

A script that pushes one element onto a list of ten million makes an entry of two records
(the list's metadata and the new element), not the list.

Pure: no I/O; the caller supplies the time and the random source (a script's random
draws no longer need to agree between replicas: only its effects are replicated).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from cairn.resp.reply import NULL, NULL_ARRAY, Array, ErrorReply, Reply
from cairn.store.commands import classify
from cairn.store.commands.blocking import Blocked
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import CommandSpec, Ctx, internal_write
from cairn.store.db import Db
from cairn.store.idempotency_entries import IDEM_COMMAND
from cairn.store.keyspace import KeyspaceReader, WriteBatch, write_batch
from cairn.store.layout import (
    META_TAG,
    decode_meta,
    decode_u64,
    encode_meta,
    encode_stamp,
    meta_key,
)
from cairn.store.notifications import Event
from cairn.store.overlay import OverlayKeyspace, encode_counter, record_owner
from cairn.store.reply_codec import decode_reply, encode_reply
from cairn.store.scope import KeyOutOfRangeError, Scope
from cairn.store.scripting.commands import evaluate, function_call
from cairn.store.scripting.pool import StatePool
from cairn.store.scripting.sandbox import DEFAULT_LIMITS
from cairn.store.transaction import TXN_COMMAND, decode_transaction, fingerprint
from cairn.store.txn_locks import lock_error

__all__ = [
    "EFFECTS_COMMAND",
    "EFFECTS_COMMANDS",
    "EFFECT_SCRIPTS",
    "PLACEHOLDER_STAMP",
    "STALE",
    "Answer",
    "Effects",
    "Replay",
    "apply_effects",
    "decode_effects",
    "effects_fingerprint",
    "effects_keys",
    "encode_effects",
    "run_for_effects",
    "run_transaction_for_effects",
    "runs_for_effects",
    "transaction_has_script",
    "wake_part",
]

EFFECTS_COMMAND = "cairn.effects"
"""The internal command carrying a script's effects: ``cairn.effects <payload>``."""
EFFECT_SCRIPTS = frozenset({"eval", "fcall"})
"""The write commands the leader runs for their effects (EVALSHA arrives as EVAL)."""
_QUEUED_SCRIPTS = frozenset({"eval", "eval_ro", "fcall", "fcall_ro"})
"""The script commands that make a queued transaction run for its effects."""
_SCRIPT_NAME = re.compile(rb"(?i)eval|fcall")
"""What every queued script's name holds: a transaction's payload without it queues none."""
_NONBLOCKING_NULL = frozenset({"blmove", "brpoplpush"})
"""Blocking commands whose run inside MULTI answers a null bulk, not the null array (as
`cairn.store.transaction` answers them)."""
PLACEHOLDER_STAMP = b"\xff" * 8 + b"\x00" * 8
"""The stamp a run writes (region id 2^64-1: no region has it); the apply replaces it."""
STALE = ErrorReply(
    "TRYAGAIN a key the script used changed before its effects applied: run it again"
)
"""An effects entry's reply when a fingerprint changed: it wrote nothing. The leader that
proposed it runs the script again; a client never sees it unless that leader is gone."""
MALFORMED = ErrorReply("ERR malformed script effects entry")
KEY_NOT_IN_REGION = ErrorReply("TRYAGAIN key outside this region's range: route it again")

_FORMAT = 1
_EXPIRED_RECORD = b"e"
"""What follows an absent key's fingerprint when its expired record is still stored: one
byte, so with the record's stamp (16 bytes or none) it never makes the length of an
absent key's fingerprint without it (whose deletion stamp is 16 bytes or none)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The script wrote nothing: `reply` answers it, as a read would be answered."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Replay:
    """The script must be replicated as itself (run by every replica), for `reason`."""

    reason: str


@dataclass(frozen=True, slots=True)
class Effects:
    """What a script wrote, to be applied as one entry (module docstring).

    Invariant: every record write belongs to a key of `fingerprints` or is the scope's
    deletion stamp; `counters` are key-count records with their change against the state
    the script ran on (and whether the run left them deleted).
    """

    reply: Reply
    fingerprints: tuple[tuple[bytes, bytes], ...]
    writes: tuple[tuple[bytes, bytes | None], ...]
    counters: tuple[tuple[bytes, int, bool], ...]
    events: tuple[Event, ...]
    wake: tuple[bytes, ...]


Outcome = Answer | Effects | Replay


def run_for_effects(
    keyspace: KeyspaceReader,
    scope: Scope,
    name: str,
    args: Sequence[bytes],
    now_ms: int,
    rng: random.Random,
    collect_events: bool = False,
    pool: StatePool | None = None,
    check_locks: bool = False,
) -> Outcome:
    """Run script command `name` (``eval`` or ``fcall``; `args` without the name, with the
    front's tail) on `keyspace` at `now_ms` through an overlay; what to do with it.
    `collect_events`: record its keyspace notifications (the leader publishes them);
    `pool`: the leader's reusable Lua states (None: a new state for this run);
    `check_locks`: the region may hold cross-region locks (`_answer`). Name
    ``cairn.exec``: a transaction queueing a script (`run_transaction_for_effects`)."""
    if name == TXN_COMMAND:
        payload = args[0] if len(args) == 1 else b""
        return run_transaction_for_effects(
            keyspace, scope, payload, now_ms, rng, collect_events, pool, check_locks
        )
    overlay = OverlayKeyspace(keyspace, _counter_test(scope), _tracked_test(scope))
    keyless: list[str] = []
    batch = overlay.begin()
    db = Db(overlay, batch, now_ms, scope, PLACEHOLDER_STAMP)
    if collect_events:
        db.events = []
    ctx = Ctx(db, now_ms, name, rng)
    try:
        reply = _call(ctx, name, args, keyless.append, pool)
        db.finish_stamps()
    except CommandError as err:
        batch.abort()
        return Answer(err.reply)
    except KeyOutOfRangeError:
        batch.abort()
        return Answer(KEY_NOT_IN_REGION)
    batch.commit()
    if not overlay.wrote:
        return _answer(keyspace, overlay, reply, now_ms, check_locks)
    if keyless or overlay.untracked:
        return Replay(f"it called {keyless[0]}" if keyless else "it walked the keyspace")
    return _effects(keyspace, scope, now_ms, overlay, reply, db.events or [])


def _answer(
    keyspace: KeyspaceReader,
    overlay: OverlayKeyspace,
    reply: Reply,
    now_ms: int,
    check_locks: bool,
) -> Answer:
    """A run that wrote nothing is answered as a read, and, as a read, only if no key it
    read is locked by a cross-region transaction (that key's value may be about to
    change, or may have changed at the transaction's primary already): else `-LOCKED`,
    which the node resolves before it runs the script again. An entry is checked when
    applied instead (`cairn.effects` names its keys)."""
    if check_locks:
        locked = lock_error(keyspace, sorted(overlay.touched), now_ms)
        if locked is not None:
            return Answer(locked)
    return Answer(reply)


def _call(
    ctx: Ctx, name: str, args: Sequence[bytes], keyless: Any, pool: StatePool | None
) -> Reply:
    if name in ("fcall", "fcall_ro"):
        return function_call(ctx, args, name == "fcall_ro", keyless, pool)
    return evaluate(ctx, args, name == "eval_ro", DEFAULT_LIMITS, keyless, pool)


# -- a transaction queueing a script -----------------------------------------------------


def runs_for_effects(name: str, args: Sequence[bytes]) -> bool:
    """Whether the leader runs write `name` (`args` without the name) for its effects: a
    script, or a transaction queueing one."""
    if name in EFFECT_SCRIPTS:
        return True
    if name == IDEM_COMMAND:  # IDEMPOTENT <id> <script>: the id rides with the effects
        inner = args[3].decode("latin-1").lower() if len(args) > 4 else ""
        return inner != IDEM_COMMAND and runs_for_effects(inner, args[4:])
    return name == TXN_COMMAND and len(args) == 1 and transaction_has_script(args[0])


def transaction_has_script(payload: bytes) -> bool:
    """Whether transaction `payload` (`encode_transaction`) queues a script (False for a
    malformed one: the apply answers it)."""
    if _SCRIPT_NAME.search(payload) is None:  # most transactions: no decoding at all
        return False
    try:
        commands = decode_transaction(payload).commands
    except ValueError:
        return False
    return any(_name(argv) in _QUEUED_SCRIPTS for argv in commands)


def run_transaction_for_effects(
    keyspace: KeyspaceReader,
    scope: Scope,
    payload: bytes,
    now_ms: int,
    rng: random.Random,
    collect_events: bool = False,
    pool: StatePool | None = None,
    check_locks: bool = False,
) -> Outcome:
    """Run transaction `payload` on `keyspace` at `now_ms` through an overlay, as
    `apply_transaction` would apply it (module docstring); what to do with it
    (`check_locks`: as `run_for_effects`)."""
    try:
        txn = decode_transaction(payload)
        scope.check_keys(txn.keys())
    except ValueError:
        return Replay("a malformed transaction")  # the apply answers it
    except KeyOutOfRangeError:
        return Answer(KEY_NOT_IN_REGION)
    overlay = OverlayKeyspace(keyspace, _counter_test(scope), _tracked_test(scope))
    reader = Db(overlay, None, now_ms, scope)
    for key, recorded in txn.watches:
        if fingerprint(reader, key) != recorded:
            return _answer(keyspace, overlay, NULL_ARRAY, now_ms, check_locks)
    keyless: list[str] = []
    events: list[Event] | None = [] if collect_events else None
    replies = []
    try:
        for argv in txn.commands:
            replies.append(_run_queued(overlay, scope, argv, now_ms, rng, keyless, events, pool))
    except KeyOutOfRangeError:  # a script named a key outside the region
        return Answer(KEY_NOT_IN_REGION)
    reply = Array(tuple(replies))
    if not overlay.wrote:
        return _answer(keyspace, overlay, reply, now_ms, check_locks)
    if keyless or overlay.untracked:
        return Replay(f"it called {keyless[0]}" if keyless else "it walked the keyspace")
    return _effects(keyspace, scope, now_ms, overlay, reply, events or [])


def _run_queued(
    overlay: OverlayKeyspace,
    scope: Scope,
    argv: list[bytes],
    now_ms: int,
    rng: random.Random,
    keyless: list[str],
    events: list[Event] | None,
    pool: StatePool | None,
) -> Reply:
    """One queued command in its own overlay batch: its reply, its writes kept only when
    it succeeds (`cairn.store.commands.run_in_batch`, with the scripts' hook and states).
    Raises `KeyOutOfRangeError` (nothing kept) when it names a key outside the region."""
    spec = classify(argv)
    if isinstance(spec, ErrorReply):
        return spec
    name, args = spec.name, argv[1:]
    batch = overlay.begin()
    db = Db(overlay, batch, now_ms, scope, PLACEHOLDER_STAMP)
    if events is not None:
        db.events = []
    try:
        if name in _QUEUED_SCRIPTS:
            reply = _call(Ctx(db, now_ms, name, rng), name, args, keyless.append, pool)
        else:
            if not spec.keys(argv):
                keyless.append(name)
            reply = spec.handler(Ctx(db, now_ms, name, rng), args)
        db.finish_stamps()
    except CommandError as err:
        batch.abort()
        return err.reply
    except BaseException:
        batch.abort()
        raise
    batch.commit()
    if events is not None and db.events:
        events.extend(db.events)
    if isinstance(reply, Blocked):  # nothing to take: answered as a timeout at once
        return NULL if name in _NONBLOCKING_NULL else NULL_ARRAY
    return reply


def _name(argv: Sequence[bytes]) -> str:
    return argv[0].lower().decode("utf-8", "replace") if argv else ""


def _effects(
    keyspace: KeyspaceReader,
    scope: Scope,
    now_ms: int,
    overlay: OverlayKeyspace,
    reply: Reply,
    events: list[Event],
) -> Outcome:
    reader = Db(keyspace, None, now_ms, scope)
    try:
        encode_reply(reply)
    except TypeError:
        return Replay("its reply has no stored form")
    return Effects(
        reply,
        tuple((key, effects_fingerprint(reader, key)) for key in sorted(overlay.touched)),
        tuple(overlay.record_writes()),
        tuple(overlay.counter_deltas()),
        tuple(events),
        tuple(overlay.written_keys()),
    )


def effects_fingerprint(reader: Db, key: bytes) -> bytes:
    """What an effects entry records of `key` (`reader`: a read-only view at the run's
    or the apply's time) and its apply compares: WATCH's `fingerprint`, followed, for a
    key that is absent because it expired while its record is still stored, by
    `_EXPIRED_RECORD` and that record's stamp (module docstring)."""
    printed = fingerprint(reader, key)
    raw = reader.records.get(meta_key(key))
    if raw is None:
        return printed
    meta = decode_meta(raw)
    if not meta.expired(reader.now_ms):
        return printed
    return printed + _EXPIRED_RECORD + meta.stamp


def _counter_test(scope: Scope) -> Any:
    """Whether a system record is one of `scope`'s key counts."""
    bounds = scope.slot_count_bounds()
    total = scope.count_key

    def is_counter(key: bytes) -> bool:
        return key == total or (bounds is not None and bounds[0] <= key < bounds[1])

    return is_counter


def _tracked_test(scope: Scope) -> Any:
    """Whether reading a system record is accounted for: the counts (read to be updated)
    and the deletion stamp (read by fingerprints)."""
    is_counter = _counter_test(scope)
    deleted = scope.deleted_key

    def tracked(key: bytes) -> bool:
        return key == deleted or bool(is_counter(key))

    return tracked


# -- the entry --------------------------------------------------------------------------


def encode_effects(effects: Effects) -> bytes:
    """The argument of a `cairn.effects` entry."""
    payload = [
        _FORMAT,
        encode_reply(effects.reply),
        [list(pair) for pair in effects.fingerprints],
        [list(pair) for pair in effects.writes],
        [list(c) for c in effects.counters],
        [list(e) for e in effects.events],
        list(effects.wake),
    ]
    return bytes(msgpack.packb(payload, use_bin_type=True))


def decode_effects(data: bytes) -> Effects:
    """The inverse of `encode_effects`; ValueError on anything else."""
    try:
        fmt, reply, prints, writes, counters, events, wake = msgpack.unpackb(data, raw=False)
        effects = Effects(
            decode_reply(reply),
            tuple(_pair(p, bytes) for p in prints),
            tuple(_pair(w, bytes | None) for w in writes),
            tuple(_counter(c) for c in counters),
            tuple(_event(e) for e in events),
            tuple(wake),
        )
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError("malformed effects entry") from exc
    if fmt != _FORMAT or not all(isinstance(k, bytes) for k in effects.wake):
        raise ValueError("malformed effects entry")
    return effects


def _pair(item: Any, second: Any) -> tuple[bytes, Any]:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
        raise ValueError("malformed effects entry")
    if not isinstance(item[1], second):
        raise ValueError("malformed effects entry")
    return item[0], item[1]


def _counter(item: Any) -> tuple[bytes, int, bool]:
    if not (
        isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], bytes)
        and isinstance(item[1], int)
        and isinstance(item[2], bool)
    ):
        raise ValueError("malformed effects entry")
    return item[0], item[1], item[2]


def _event(item: Any) -> Event:
    if not (
        isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], int)
        and isinstance(item[1], str)
        and isinstance(item[2], bytes)
    ):
        raise ValueError("malformed effects entry")
    return item[0], item[1], item[2]


def effects_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The Redis keys of a `cairn.effects` entry (name first): those it fingerprints."""
    try:
        return [key for key, _ in decode_effects(argv[1]).fingerprints]
    except (ValueError, IndexError):
        return []


def wake_part(payload: bytes) -> list[bytes]:
    """EVAL's arguments for a script declaring exactly the keys effects `payload` wrote:
    the command an applied effects entry stands for when blocked clients are woken
    (every key it wrote may have been filled; a malformed payload wakes no one)."""
    try:
        wake = decode_effects(payload).wake
    except ValueError:
        wake = ()
    return [b"", b"%d" % len(wake), *wake]


# -- apply ------------------------------------------------------------------------------


def apply_effects(
    keyspace: Any,
    scope: Scope,
    index: int,
    now_ms: int,
    data: bytes,
    events: list[Event] | None = None,
) -> Reply:
    """Apply effects `data` (`encode_effects`) at log `index` and time `now_ms`, inside
    the caller's keyspace transaction: the script's reply, or `STALE` (nothing written)
    when a key it used changed since it ran. `events`: where its notifications go (None:
    not collected)."""
    try:
        effects = decode_effects(data)
        keys = [key for key, _ in effects.fingerprints]
        scope.check_keys(keys)
        _check_writes(effects, frozenset(keys), scope)
    except ValueError:
        return MALFORMED
    except KeyOutOfRangeError:
        return KEY_NOT_IN_REGION
    reader = Db(keyspace, None, now_ms, scope)
    for key, recorded in effects.fingerprints:
        if effects_fingerprint(reader, key) != recorded:
            return STALE
    stamp = encode_stamp(scope.region_id or 0, index)
    with write_batch(keyspace) as batch:
        _write_records(batch, effects.writes, stamp)
        _add_counts(batch, effects.counters)
    if events is not None:
        events.extend(effects.events)
    return effects.reply


def _check_writes(effects: Effects, keys: frozenset[bytes], scope: Scope) -> None:
    """ValueError unless every write is a record of a fingerprinted key (or the scope's
    deletion stamp) and every counter one of the scope's counts."""
    for internal, _ in effects.writes:
        owner = record_owner(internal)
        if owner not in keys and internal != scope.deleted_key:
            raise ValueError("an effects entry writes outside its keys")
    is_counter = _counter_test(scope)
    if not all(is_counter(key) for key, _, _ in effects.counters):
        raise ValueError("an effects entry changes a record that is no count")


def _write_records(
    batch: WriteBatch, writes: Sequence[tuple[bytes, bytes | None]], stamp: bytes
) -> None:
    """Write the run's records, its placeholder stamps replaced by `stamp`."""
    for internal, value in writes:
        if value is None:
            batch.delete(internal)
        elif value == PLACEHOLDER_STAMP:
            batch.put(internal, stamp)
        elif internal[:1] == META_TAG:
            meta = decode_meta(value)
            batch.put(internal, encode_meta(meta, stamp) if meta.stamp else value)
        else:
            batch.put(internal, value)


def _add_counts(batch: WriteBatch, counters: Sequence[tuple[bytes, int, bool]]) -> None:
    """Add each count's change to its value now; a count the run deleted (a slot it
    emptied) is deleted if it is zero now too."""
    for key, delta, deleted in counters:
        value = decode_u64(batch.get(key)) + delta
        if value <= 0 and deleted:
            batch.delete(key)
        else:
            batch.put(key, encode_counter(value))


def _not_direct(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """`cairn.effects` is applied by `apply_effects`, never through a handler."""
    raise CommandError(ErrorReply("ERR cairn.effects is applied by the machine only"))


EFFECTS_COMMANDS: dict[str, CommandSpec] = {
    EFFECTS_COMMAND: internal_write(
        EFFECTS_COMMAND,
        2,
        _not_direct,
        effects_keys,
        "scripting",
        "Internal: a script's effects, replicated instead of the script.",
        "O(N) in the records the script wrote",
    )
}
"""The internal command of effects replication: not in `COMMANDS`, so no client (and no
forwarding peer) can send it; only a region's leader proposes it."""
