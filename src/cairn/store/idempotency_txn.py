"""Idempotent writes across regions: the request id checked when a cross-region
transaction locks its primary, and recorded in the same entry as its primary commit.

Theory of operation (docs/transactions.md, "Idempotent writes across regions"). A tagged
EXEC or tagged multi-key write whose keys span regions runs as a cross-region transaction
(`cairn.txn.Coordinator`). Its primary key is the request's first key (`request_key`:
the command's first key; a transaction's first command key, else its first watched key):
the key whose hash slot keeps the request id record of a single-region request
(`cairn.store.idempotency`), so a retry finds the record wherever it was written, whether
the retry runs in one region or several, and whatever it watches. Two internal writes
wrap the primary region's steps:

- `LOCK_COMMAND` ``cairn.idem.lock <request-id> <digest> <first-key> <cairn.txn.lock
  arguments ...>``: when the request id is recorded (and unexpired) in the first key's
  slot, answers ``[final, <encoded reply>]`` (the recorded reply, or the "different
  command" error) and locks nothing; when the region's table is full, the same with the
  table-full error; otherwise exactly `cairn.txn.lock`.
- `COMMIT_COMMAND` ``cairn.idem.commit <request-id> <ttl ms> <max ids> <digest> <reply>
  <start_ts> <commit_ts> <key> ...`` (the primary's region's keys, the primary first):
  when the transaction no longer holds the primary's lock, exactly `cairn.txn.commit`
  (a commit sent again answers ``ok`` if it committed, ``rolledback`` if not: so a lost
  reply is safe to resend); when it holds it and the id is already recorded (or the table
  is full), rolls the region's locks back (the primary marked rolled back) and answers
  ``[final, ...]``; otherwise `cairn.txn.commit` and, in the same batch, the record
  ``[now + ttl, digest, primary, reply]``: the commit point and the record are one entry.

Why at most once: the record is written in the entry that drops the primary's lock, and
checked in the entry that takes it. Two runs of one request (an original still in flight
and its retry) both need the primary's lock: the second to take it either finds the
record (the first committed) or finds none, and then the first can no longer commit (its
lock is gone: `cairn.txn.commit` answers ``rolledback``, and its coordinator, starting
again, meets the record). The record lives in the primary's region's Raft state, so a
leader change or a restart keeps it, and it moves with the first key's slot through
splits and merges (`split_requests`, `move_requests`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import Array, Bulk, ErrorReply, Reply
from cairn.store.commands import run_in_batch
from cairn.store.idempotency_entries import (
    MALFORMED,
    MAX_REQUEST_ID,
    TXN_COMMIT_COMMAND,
    TXN_COMMIT_HEAD,
    TXN_LOCK_COMMAND,
    txn_lock_keys,
)
from cairn.store.idempotency_table import (
    MAX_KEPT_REPLY,
    record_encoded,
    record_key,
    recorded_answer,
)
from cairn.store.keyspace import Keyspace, WriteBatch, write_batch
from cairn.store.layout import encode_stamp
from cairn.store.notifications import Event
from cairn.store.reply_codec import decode_reply, encode_reply
from cairn.store.scope import KeyOutOfRangeError, Scope
from cairn.store.slot import key_slot
from cairn.store.txn_locks import COMMIT_COMMAND as TXN_COMMIT
from cairn.store.txn_locks import LOCK_COMMAND as TXN_LOCK
from cairn.store.txn_locks import ROLLBACK_COMMAND as TXN_ROLLBACK
from cairn.store.txn_locks import TXN_LOCK_COMMANDS, read_lock

__all__ = [
    "COMMIT_COMMAND",
    "FINAL",
    "LOCK_COMMAND",
    "apply_idempotent_txn",
    "final_reply",
]

LOCK_COMMAND = TXN_LOCK_COMMAND
COMMIT_COMMAND = TXN_COMMIT_COMMAND
FINAL = b"final"
"""The status word of a reply that ends the transaction with the encoded reply it
carries (the recorded one, or an error): nothing of it was applied by this run."""
DIGEST_BYTES = 16
_COMMIT_HEAD = TXN_COMMIT_HEAD


def _final(reply: Reply) -> Reply:
    """``[final, <reply encoded>]``: survives a RESP2 forward, whatever the reply's type."""
    try:
        blob = encode_reply(reply)
    except TypeError:
        blob = encode_reply(ErrorReply("ERR the recorded reply could not be read"))
    return Array((Bulk(FINAL), Bulk(blob)))


def final_reply(reply: Reply) -> bytes | None:
    """The encoded reply a `_final` answer carries (None: not one)."""
    if (
        isinstance(reply, Array)
        and len(reply.items) == 2
        and reply.items[0] == Bulk(FINAL)
        and isinstance(reply.items[1], Bulk)
    ):
        return reply.items[1].value
    return None


def apply_idempotent_txn(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    name: str,
    args: Sequence[bytes],
    events: list[Event] | None,
) -> Reply:
    """Apply `LOCK_COMMAND` or `COMMIT_COMMAND` (`args` without the name) at log `index`
    and time `now_ms`, inside the machine's transaction (module docstring)."""
    if name == LOCK_COMMAND:
        return _lock(keyspace, scope, index, now_ms, args)
    return _commit(keyspace, scope, index, now_ms, args, events)


def _run(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    command: str,
    args: Sequence[bytes],
    events: list[Event] | None = None,
) -> Reply:
    """One of the transactions' own commands, exactly as its own entry would run it."""
    stamp = encode_stamp(scope.region_id or 0, index)
    spec = TXN_LOCK_COMMANDS[command]
    return run_in_batch(keyspace, spec, args, now_ms, scope, stamp, index, events)


def _checked(request_id: bytes, digest: bytes) -> bool:
    return 0 < len(request_id) <= MAX_REQUEST_ID and len(digest) == DIGEST_BYTES


def _known(
    keyspace: Keyspace,
    scope: Scope,
    now_ms: int,
    request_id: bytes,
    first: bytes,
    digest: bytes,
    max_ids: int | None,
) -> Reply | None:
    """The final answer when the request id is recorded in `first`'s slot (or the table
    is full, when `max_ids` is given), expired ids purged first; None: go on."""
    where = record_key(scope, key_slot(first), request_id)
    return recorded_answer(keyspace, scope, where, now_ms, digest, max_ids)


def _lock(
    keyspace: Keyspace, scope: Scope, index: int, now_ms: int, args: Sequence[bytes]
) -> Reply:
    """`LOCK_COMMAND`: the recorded answer, or `cairn.txn.lock`."""
    if len(args) < 4:
        return MALFORMED
    request_id, digest, first = args[0], args[1], args[2]
    keys = txn_lock_keys([b"", *args])
    if not _checked(request_id, digest) or first not in keys:
        return MALFORMED
    try:
        scope.check_keys(keys)
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    known = _known(keyspace, scope, now_ms, request_id, first, digest, None)
    if known is not None:
        return _final(known)
    return _run(keyspace, scope, index, now_ms, TXN_LOCK, args[3:])


def _commit(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    args: Sequence[bytes],
    events: list[Event] | None,
) -> Reply:
    """`COMMIT_COMMAND`: commit and record, or the recorded answer after a rollback."""
    if len(args) <= _COMMIT_HEAD:
        return MALFORMED
    request_id, ttl_raw, max_raw, digest, blob, start_raw = args[:6]
    try:
        ttl_ms, max_ids, start_ts = int(ttl_raw), int(max_raw), int(start_raw)
    except ValueError:
        return MALFORMED
    keys = list(args[_COMMIT_HEAD:])
    if not (_checked(request_id, digest) and 0 < ttl_ms < 1 << 62 and 0 < max_ids < 1 << 62):
        return MALFORMED
    if len(blob) > MAX_KEPT_REPLY:
        return MALFORMED
    try:
        scope.check_keys(keys)
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    commit_args = [start_raw, args[6], b"1", *keys]
    primary = keys[0]
    lock = read_lock(keyspace, primary)
    if lock is None or lock.start_ts != start_ts:  # a resend, or rolled back: as a commit
        return _run(keyspace, scope, index, now_ms, TXN_COMMIT, commit_args, events)
    known = _known(keyspace, scope, now_ms, request_id, primary, digest, max_ids)
    if known is not None:
        _run(keyspace, scope, index, now_ms, TXN_ROLLBACK, [start_raw, b"1", *keys])
        return _final(known)
    reply = _run(keyspace, scope, index, now_ms, TXN_COMMIT, commit_args, events)
    if reply == Array((Bulk(b"ok"),)):
        where = record_key(scope, key_slot(primary), request_id)
        with write_batch(keyspace) as batch:
            _record_blob(batch, scope, where, now_ms + ttl_ms, digest, primary, blob)
    return reply


def _record_blob(
    batch: WriteBatch,
    scope: Scope,
    where: bytes,
    expire_ms: int,
    digest: bytes,
    first: bytes,
    blob: bytes,
) -> None:
    """Record the request with its reply as the coordinator encoded it (b"": not kept);
    one that does not decode is kept as not kept (a retry must never fail to read it)."""
    kept: bytes | None = blob or None
    if kept is not None:
        try:
            decode_reply(kept)
        except Exception:  # msgpack and the tree raise several unrelated types
            kept = None
    record_encoded(batch, scope, where, expire_ms, digest, first, kept)
