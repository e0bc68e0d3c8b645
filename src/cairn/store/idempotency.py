"""Idempotent writes: a request id applied at most once, its first reply kept for retries.

Theory of operation. A client tags a write with ``IDEMPOTENT <request-id> <command> ...``
(or a transaction with ``IDEMPOTENT <request-id> EXEC``). The node that takes the command
rewrites it into the internal write `IDEM_COMMAND`::

    cairn.idem <request-id> <ttl ms> <max ids> <command> [args ...]

stamping in its configured time to live and table cap (`Limits.idempotency_ttl_ms`,
`idempotency_max_ids`), so every replica applies the entry with the same settings. It is
routed by the wrapped command's keys and proposed as ONE Raft entry, so the decision to
apply or to answer from the table is made at apply, deterministically, on every replica.

The request table is replicated state under the machine's system prefix (``X`` for the
whole keyspace, ``Xr | region id`` for a region), three record families:

- ``idem: | slot | request id`` -> msgpack ``[expire ms, digest, first key, reply]``:
  one per live request id, keyed by the hash slot of the request's first key (the wrapped
  command's first key; a transaction's first command key, else its first watched key:
  `request_key`, so a retry watching other keys finds it);
- ``idemt | expire ms (8 bytes) | slot | request id`` -> empty: the same ids ordered by
  expiry, so the expired ones are found first without a scan;
- ``idemn`` -> how many ids the table holds (the cap's count).

Applying `cairn.idem` at time ``now`` (`apply_idempotent`): up to `PURGE_ON_WRITE`
expired ids are dropped first; then if the id is present and unexpired, its stored reply
is the answer and nothing else happens (or an error when the id was first used with
another command: the digest of the wrapped command differs); otherwise the wrapped command
(or transaction) runs exactly as an untagged one would, and its reply is recorded with
expiry ``now + ttl``. A TRYAGAIN (a key outside the region: the router retries) is never
recorded: the command was not run. Every other reply is, errors included: the answer to a
retry is the first outcome, and a command that failed left no other trace.

Why keyed by slot: a retry is routed by its first key, so its record must live with that
key through splits and merges. A split moves the records of the slots past the split key to
the new half (and, for the one slot the split key may cut, those whose first key lies on
the right), a merge moves the source's into the target (`split_requests`,
`move_requests`): O(records moved), like the per-slot key counts. The digest check
("same id, another command") covers what the table can see: the same id in the same slot.

Limits: a request id is 1 to `MAX_REQUEST_ID` bytes; the table holds at most `max ids`
live ids per region: a new id beyond that is refused with `TABLE_FULL` (nothing applied:
the client may retry later or untagged), never silently evicting a live id, which would
break the at-most-once promise. A reply larger than `MAX_KEPT_REPLY` bytes is not kept:
a retry is answered `REPLY_NOT_KEPT` (the write is still applied once). Expired ids go
by the purge on each tagged write and by `PURGE_COMMAND`, which a region's leader proposes
when `has_expired` (`cairn.runtime.node`'s active expiry).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    NullArray,
    NullBulk,
    Pairs,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)
from cairn.store.commands import CommandError, CommandSpec, Flag, classify, run_in_batch
from cairn.store.commands.spec import Ctx, internal_write
from cairn.store.keyspace import Keyspace, KeyspaceReader, WriteBatch, write_batch
from cairn.store.layout import SYSTEM_TAG, encode_stamp, prefix_end, region_system_prefix
from cairn.store.notifications import Event
from cairn.store.scope import KeyOutOfRangeError, Scope, range_key
from cairn.store.slot import key_slot
from cairn.store.transaction import TXN_COMMAND, apply_transaction, decode_transaction
from cairn.store.txn_locks import parse_lock

__all__ = [
    "DEFAULT_MAX_IDS",
    "DEFAULT_TTL_MS",
    "IDEMPOTENCY_COMMANDS",
    "IDEM_COMMAND",
    "MAX_REQUEST_ID",
    "PREFIX",
    "PURGE_COMMAND",
    "TXN_COMMIT_COMMAND",
    "TXN_LOCK_COMMAND",
    "apply_idempotency",
    "check_image_record",
    "checked_argv",
    "earliest_request_expiry",
    "has_expired",
    "move_requests",
    "record_encoded",
    "request_count",
    "request_digest",
    "request_key",
    "split_requests",
    "tag_command",
    "transaction_request_key",
    "wrapped_keys",
]

PREFIX = "idempotent"
"""The client-visible prefix command: ``IDEMPOTENT <request-id> <command> [args ...]``."""
IDEM_COMMAND = "cairn.idem"
"""The internal entry: ``cairn.idem <request-id> <ttl ms> <max ids> <command> [args ...]``."""
PURGE_COMMAND = "cairn.idempurge"
"""The internal entry dropping expired request ids (no arguments)."""

MAX_REQUEST_ID = 64
"""The longest request id, in bytes (a UUID is 36; a hash in hex 64)."""
DEFAULT_TTL_MS = 600_000
"""How long a request id is remembered by default: 10 minutes (DynamoDB's client request
tokens live as long): far beyond a client's retry loop across a failover or a restart."""
DEFAULT_MAX_IDS = 100_000
"""Live request ids a region holds by default (~170 tagged writes a second for 10 min)."""
MAX_KEPT_REPLY = 64 << 10
"""The largest encoded reply kept for retries; a larger one is answered `REPLY_NOT_KEPT`."""
PURGE_ON_WRITE = 8
"""Expired ids each tagged write drops first (more than it adds: the table cannot grow
with expired ids while tagged writes arrive)."""
PURGE_BATCH = 256
"""Expired ids one `PURGE_COMMAND` entry drops at most."""

_MAX_LIMIT = 1 << 62
_RECORD = b"idem:"
_BY_EXPIRY = b"idemt"
_COUNT = b"idemn"
_U64 = struct.Struct(">Q")
_SLOT = struct.Struct(">H")

BAD_ID = ErrorReply(f"ERR the request id must be 1 to {MAX_REQUEST_ID} bytes")
MALFORMED = ErrorReply("ERR malformed idempotent request entry")
MISMATCH = ErrorReply(
    "ERR this request id was already used for a different command: use a new id per request"
)
REPLY_NOT_KEPT = ErrorReply(
    "ERR this request was already applied; its reply was too large to keep for a retry"
)
INSIDE_MULTI = ErrorReply(
    "ERR IDEMPOTENT is not allowed inside MULTI: tag the whole transaction with "
    "IDEMPOTENT <request-id> EXEC"
)


def table_full(max_ids: int) -> ErrorReply:
    """The refusal of a new request id when the region's table holds `max_ids` live ones."""
    return ErrorReply(
        f"ERR too many live request ids in this region (at most {max_ids}, "
        "limits.idempotency_max_ids): nothing was applied, retry later"
    )


# -- the client's prefix ----------------------------------------------------------------


def tag_command(
    argv: Sequence[bytes], ttl_ms: int, max_ids: int
) -> tuple[list[bytes], CommandSpec] | ErrorReply:
    """The internal entry argv and spec for client command ``IDEMPOTENT id cmd args...``
    (`argv`, name first), or the error reply for a bad request id or wrapped command."""
    if len(argv) < 3:
        return ErrorReply(f"ERR wrong number of arguments for '{PREFIX}' command")
    request_id, wrapped = argv[1], list(argv[2:])
    if not 0 < len(request_id) <= MAX_REQUEST_ID:
        return BAD_ID
    checked = _check_wrapped(wrapped)
    if isinstance(checked, ErrorReply):
        return checked
    name = checked.name.encode()
    internal = [IDEM_COMMAND.encode(), request_id, b"%d" % ttl_ms, b"%d" % max_ids, name]
    return internal + wrapped[1:], IDEMPOTENCY_COMMANDS[IDEM_COMMAND]


def tag_transaction(
    request_id: bytes, payload: bytes, ttl_ms: int, max_ids: int
) -> list[bytes] | ErrorReply:
    """The internal entry argv for ``IDEMPOTENT id EXEC`` of transaction `payload`."""
    if not 0 < len(request_id) <= MAX_REQUEST_ID:
        return BAD_ID
    head = [IDEM_COMMAND.encode(), request_id, b"%d" % ttl_ms, b"%d" % max_ids]
    return [*head, TXN_COMMAND.encode(), payload]


def _check_wrapped(wrapped: Sequence[bytes]) -> CommandSpec | ErrorReply:
    """The spec of a wrapped client command, or why it cannot be tagged."""
    spec = classify(wrapped)
    if isinstance(spec, ErrorReply):
        return spec
    if Flag.BLOCKING in spec.flags:
        return ErrorReply(f"ERR IDEMPOTENT cannot wrap '{spec.name}': it may block")
    if not spec.is_write:
        return ErrorReply(f"ERR IDEMPOTENT cannot wrap '{spec.name}': not a write command")
    if not spec.keys(wrapped):
        return ErrorReply(f"ERR IDEMPOTENT cannot wrap '{spec.name}': it names no key")
    return spec


def checked_argv(argv: list[bytes]) -> list[bytes] | None:
    """What ACL checks for `argv`: the wrapped command of ``IDEMPOTENT`` or of a
    `cairn.idem` entry (the prefix itself grants nothing), `argv` itself otherwise; None
    for a tagged transaction, whose commands were checked as they were queued."""
    name = argv[0].lower()
    if name == PREFIX.encode():
        return argv[2:] or argv
    if name == IDEM_COMMAND.encode():
        wrapped = argv[4:]
        if wrapped and wrapped[0] == TXN_COMMAND.encode():
            return None
        return wrapped or argv
    return argv


def wrapped_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `cairn.idem` entry (argv, name first): the wrapped command's or
    transaction's (what routing places and the region checks); none when malformed."""
    wrapped = argv[4:]
    if not wrapped:
        return []
    if wrapped[0] == EFFECTS_WRAPPED:  # a tagged script's effects: the keys it used
        return _effects_keys(wrapped)
    if wrapped[0] == TXN_COMMAND.encode():
        if len(wrapped) != 2:
            return []
        try:  # a keyless transaction runs where the empty key lives, as an untagged one
            return decode_transaction(wrapped[1]).keys() or [b""]
        except ValueError:
            return []
    spec = classify(wrapped)
    return [] if isinstance(spec, ErrorReply) else spec.keys(wrapped)


def _effects_keys(wrapped: Sequence[bytes]) -> list[bytes]:
    """The keys of wrapped ``cairn.effects <effects> <record-key> <digest>``: the record
    key and every key the script used; none when malformed."""
    from cairn.store.scripting.effects import decode_effects

    if len(wrapped) != 4:
        return []
    try:
        effects = decode_effects(wrapped[1])
    except ValueError:
        return []
    return [wrapped[2], *(key for key, _ in effects.fingerprints)]


def request_key(wrapped: Sequence[bytes]) -> bytes | None:
    """The key whose hash slot keeps a request's id: the wrapped command's first key, or
    a transaction's first command key (its first watched key when its commands name
    none): never decided by WATCH alone, so a retry that watches other keys, or the same
    in another order, finds the record. None when the request names no key."""
    if wrapped and wrapped[0] == TXN_COMMAND.encode():
        if len(wrapped) != 2:
            return None
        try:
            txn = decode_transaction(wrapped[1])
        except ValueError:
            return None
        return transaction_request_key(txn.watches, txn.commands)
    spec = classify(wrapped) if wrapped else None
    keys = [] if spec is None or isinstance(spec, ErrorReply) else spec.keys(wrapped)
    return keys[0] if keys else None


def transaction_request_key(
    watches: Sequence[tuple[bytes, bytes]], commands: Sequence[Sequence[bytes]]
) -> bytes | None:
    """`request_key` of a transaction of `commands` watching `watches`."""
    for argv in commands:
        spec = classify(list(argv))
        if isinstance(spec, CommandSpec):
            keys = spec.keys(list(argv))
            if keys:
                return keys[0]
    return watches[0][0] if watches else None


# -- applying ---------------------------------------------------------------------------


def apply_idempotency(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    name: str,
    args: Sequence[bytes],
    events: list[Event] | None,
) -> Reply:
    """Apply internal entry `name` (`IDEM_COMMAND` or `PURGE_COMMAND`, `args` without
    the name) at log `index` and time `now_ms`, inside the machine's transaction."""
    if name == PURGE_COMMAND:
        with write_batch(keyspace) as batch:
            return Integer(_purge(batch, scope, now_ms, PURGE_BATCH))
    if name in (TXN_LOCK_COMMAND, TXN_COMMIT_COMMAND):  # across regions: its own module
        from cairn.store.idempotency_txn import apply_idempotent_txn

        return apply_idempotent_txn(keyspace, scope, index, now_ms, name, args, events)
    parsed = _parse(args)
    if isinstance(parsed, ErrorReply):
        return parsed
    request_id, ttl_ms, max_ids, wrapped = parsed
    if wrapped[0] == EFFECTS_WRAPPED:  # a tagged script run on the leader: its effects
        return _apply_tagged_effects(keyspace, scope, index, now_ms, parsed, events)
    keys = wrapped_keys([b"", *args])
    if not keys:
        return MALFORMED
    if wrapped[0] != TXN_COMMAND.encode():
        checked = _check_wrapped(wrapped)  # refused at the node: never from a sound entry
        if isinstance(checked, ErrorReply):
            return checked
    try:
        scope.check_keys(keys)
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    first = request_key(wrapped) or keys[0]
    where = _record_key(scope, key_slot(first), request_id)
    digest = _digest(wrapped)
    with write_batch(keyspace) as batch:
        _purge(batch, scope, now_ms, PURGE_ON_WRITE)
        known = _lookup(batch, scope, where, now_ms)
        if known is not None:
            return _answer(known, digest)
        if decode_count(batch.get(_count_key(scope))) >= max_ids:
            return table_full(max_ids)
    reply = _run_wrapped(keyspace, scope, index, now_ms, wrapped, events)
    if isinstance(reply, ErrorReply) and reply.message.startswith("TRYAGAIN"):
        return reply
    with write_batch(keyspace) as batch:
        _record(batch, scope, where, now_ms + ttl_ms, digest, first, reply)
    return reply


EFFECTS_WRAPPED = b"cairn.effects"
"""What a `cairn.idem` entry wraps for a tagged script the leader ran once: ``cairn.effects
<effects> <record-key> <digest>`` (the effects of `cairn.store.scripting.effects`, the key
whose slot keeps the id and the digest of the script command the client sent)."""

_DIGEST_BYTES = 16


def tag_effects(args: Sequence[bytes], effects: bytes) -> list[bytes] | None:
    """The `cairn.idem` entry (name first) recording `args`' request id (a `cairn.idem`
    entry's arguments wrapping a script) with `effects`, the run's `encode_effects`, in
    the same entry; None when `args` is malformed (it is then proposed as it is)."""
    found = _tagged_request(args)
    if found is None:
        return None
    _, wrapped, first = found
    head = [IDEM_COMMAND.encode(), *args[:3]]
    return [*head, EFFECTS_WRAPPED, effects, first, _digest(wrapped)]


def _tagged_request(
    args: Sequence[bytes],
) -> tuple[tuple[bytes, int, int, list[bytes]], list[bytes], bytes] | None:
    """`cairn.idem` entry `args` parsed, its wrapped command, and the key its record
    lives with (the request's first key); None when malformed or keyless."""
    parsed = _parse(args)
    if isinstance(parsed, ErrorReply):
        return None
    wrapped = parsed[3]
    keys = wrapped_keys([b"", *args])
    if not keys:
        return None
    return parsed, wrapped, request_key(wrapped) or keys[0]


def known_reply(
    reader: KeyspaceReader, scope: Scope, args: Sequence[bytes], now_ms: int
) -> Reply | None:
    """The recorded answer to `cairn.idem` entry `args` (a retry's) read without writing,
    or None when its id is not recorded (live) or `args` is malformed."""
    found = _tagged_request(args)
    if found is None:
        return None
    parsed, wrapped, first = found
    raw = reader.get(_record_key(scope, key_slot(first), parsed[0]))
    if raw is None:
        return None
    known = _unpack(raw)
    expire_ms = known[0]
    if not isinstance(expire_ms, int) or expire_ms <= now_ms:
        return None
    return _answer(known, _digest(wrapped))


def _apply_tagged_effects(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    parsed: tuple[bytes, int, int, list[bytes]],
    events: list[Event] | None,
) -> Reply:
    """Apply a tagged script's effects at most once: the first outcome for a recorded id,
    else the effects and the record together (nothing recorded when they are stale: the
    leader runs the script again)."""
    from cairn.store.scripting.effects import STALE, apply_effects

    request_id, ttl_ms, max_ids, wrapped = parsed
    if len(wrapped) != 4 or len(wrapped[3]) != _DIGEST_BYTES:
        return MALFORMED
    _, effects, first, digest = wrapped
    try:
        scope.check_keys([first])
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    where = _record_key(scope, key_slot(first), request_id)
    with write_batch(keyspace) as batch:
        _purge(batch, scope, now_ms, PURGE_ON_WRITE)
        known = _lookup(batch, scope, where, now_ms)
        if known is not None:
            return _answer(known, digest)
        if decode_count(batch.get(_count_key(scope))) >= max_ids:
            return table_full(max_ids)
    reply = apply_effects(keyspace, scope, index, now_ms, effects, events)
    if reply is STALE or (
        isinstance(reply, ErrorReply) and reply.message.startswith(("TRYAGAIN", "ERR malformed"))
    ):
        return reply  # nothing written: nothing recorded
    with write_batch(keyspace) as batch:
        _record(batch, scope, where, now_ms + ttl_ms, digest, first, reply)
    return reply


def _parse(args: Sequence[bytes]) -> tuple[bytes, int, int, list[bytes]] | ErrorReply:
    """(request id, ttl ms, max ids, wrapped argv) of a `cairn.idem` entry's arguments."""
    if len(args) < 4 or not 0 < len(args[0]) <= MAX_REQUEST_ID:
        return MALFORMED
    try:
        ttl_ms, max_ids = int(args[1]), int(args[2])
    except ValueError:
        return MALFORMED
    if not (0 < ttl_ms < _MAX_LIMIT and 0 < max_ids < _MAX_LIMIT):
        return MALFORMED
    return args[0], ttl_ms, max_ids, list(args[3:])


def _run_wrapped(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    wrapped: list[bytes],
    events: list[Event] | None,
) -> Reply:
    """The wrapped command or transaction, applied exactly as an untagged entry."""
    if wrapped[0] == TXN_COMMAND.encode():
        return apply_transaction(keyspace, scope, index, now_ms, wrapped[1], events)
    spec = classify(wrapped)
    assert not isinstance(spec, ErrorReply)  # checked by `apply_idempotency`
    stamp = encode_stamp(scope.region_id or 0, index)
    return run_in_batch(keyspace, spec, wrapped[1:], now_ms, scope, stamp, index, events)


def _digest(wrapped: Sequence[bytes]) -> bytes:
    """What tells one wrapped command from another: its lowercased name and arguments (a
    transaction's commands, not its WATCH fingerprints, which a client's retry renews)."""
    parts: list[object] = [wrapped[0].lower(), *wrapped[1:]]
    if wrapped[0] == TXN_COMMAND.encode():
        parts = [wrapped[0], decode_transaction(wrapped[1]).commands]
    packed = msgpack.packb(parts, use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=16).digest()


def request_digest(wrapped: Sequence[bytes]) -> bytes:
    """The digest a request id is recorded with for the wrapped command or transaction
    `wrapped` (``[name, args ...]`` or ``[cairn.exec, payload]``): what a cross-region
    run of the same request records too (`cairn.store.idempotency_txn`)."""
    return _digest(wrapped)


def _answer(known: list[object], digest: bytes) -> Reply:
    """The answer to a retry of a recorded request id."""
    _, stored_digest, _, blob = known
    if stored_digest != digest:
        return MISMATCH
    if not isinstance(blob, bytes):
        return REPLY_NOT_KEPT
    return decode_reply(blob)


# -- the table's records ----------------------------------------------------------------


def check_image_record(scope: Scope, key: bytes, value: bytes) -> None:
    """`ValueError` unless `key`, a system record of region `scope` in an image a
    commit-merge carries, is one `move_requests` and later lookups read safely: a
    request record [expiry (u64), digest, first key, reply or None] under a slot, the
    count 8 bytes. A key that is not the table's passes (`cairn.store.merge_image`)."""
    name = key[len(_prefix(scope)) :]
    if name == _COUNT and len(value) != _U64.size:
        raise ValueError("the request table's count is not 8 bytes")
    if not name.startswith(_RECORD):
        return
    if len(name) < len(_RECORD) + _SLOT.size:
        raise ValueError("a request record's key has no slot")
    try:
        known = msgpack.unpackb(value, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"a request record is not msgpack ({type(exc).__name__})") from None
    if not (isinstance(known, list) and len(known) == 4):
        raise ValueError("a request record is [expiry, digest, first key, reply]")
    expire_ms, digest, first_key, blob = known
    if type(expire_ms) is not int or not 0 <= expire_ms < 1 << 64:
        raise ValueError("a request record's expiry is out of range")
    if not (isinstance(digest, bytes) and isinstance(first_key, bytes)):
        raise ValueError("a request record's digest and first key are bytes")
    if blob is not None and not isinstance(blob, bytes):
        raise ValueError("a request record's reply is bytes or nil")


def _prefix(scope: Scope) -> bytes:
    return SYSTEM_TAG if scope.region_id is None else region_system_prefix(scope.region_id)


def _record_key(scope: Scope, slot: int, request_id: bytes) -> bytes:
    return _prefix(scope) + _RECORD + _SLOT.pack(slot) + request_id


def _expiry_key(scope: Scope, expire_ms: int, slot: int, request_id: bytes) -> bytes:
    return _prefix(scope) + _BY_EXPIRY + _U64.pack(expire_ms) + _SLOT.pack(slot) + request_id


def _count_key(scope: Scope) -> bytes:
    return _prefix(scope) + _COUNT


def decode_count(raw: bytes | None) -> int:
    """A stored count (a missing record is 0)."""
    return 0 if raw is None else int(_U64.unpack(raw)[0])


def request_count(reader: KeyspaceReader, scope: Scope) -> int:
    """How many request ids (live or expired, not yet purged) the scope's table holds."""
    return decode_count(reader.get(_count_key(scope)))


def _add_count(batch: WriteBatch, scope: Scope, delta: int) -> None:
    value = max(0, decode_count(batch.get(_count_key(scope))) + delta)
    if value:
        batch.put(_count_key(scope), _U64.pack(value))
    else:
        batch.delete(_count_key(scope))


def _unpack(raw: bytes) -> list[object]:
    value = msgpack.unpackb(raw, raw=False)
    assert isinstance(value, list) and len(value) == 4
    return value


def _lookup(batch: WriteBatch, scope: Scope, where: bytes, now_ms: int) -> list[object] | None:
    """The live record at `where`; an expired one still there is dropped (None)."""
    raw = batch.get(where)
    if raw is None:
        return None
    known = _unpack(raw)
    expire_ms = known[0]
    assert isinstance(expire_ms, int)
    if expire_ms > now_ms:
        return known
    _drop(batch, scope, where, expire_ms)
    return None


def _record(
    batch: WriteBatch,
    scope: Scope,
    where: bytes,
    expire_ms: int,
    digest: bytes,
    first_key: bytes,
    reply: Reply,
) -> None:
    try:
        blob: bytes | None = encode_reply(reply)
    except TypeError:  # a reply type the table cannot hold: kept as "not kept"
        blob = None
    record_encoded(batch, scope, where, expire_ms, digest, first_key, blob)


def record_encoded(
    batch: WriteBatch,
    scope: Scope,
    where: bytes,
    expire_ms: int,
    digest: bytes,
    first_key: bytes,
    blob: bytes | None,
) -> None:
    """Record a request id at `where` with its reply already encoded (`encode_reply`;
    None, or one past `MAX_KEPT_REPLY`: not kept)."""
    if len(blob or b"") > MAX_KEPT_REPLY:
        blob = None
    _put(batch, scope, where, [expire_ms, digest, first_key, blob])
    _add_count(batch, scope, 1)


def _put(batch: WriteBatch, scope: Scope, where: bytes, value: list[object]) -> None:
    """Write record `value` at `where` (a key of `scope`'s table) and its expiry entry."""
    batch.put(where, msgpack.packb(value, use_bin_type=True))
    expire_ms = value[0]
    assert isinstance(expire_ms, int)
    batch.put(_expiry_entry(scope, where, expire_ms), b"")


def _expiry_entry(scope: Scope, where: bytes, expire_ms: int) -> bytes:
    """The expiry-index key of record key `where` (slot and id follow the family name)."""
    tail = where[len(_prefix(scope)) + len(_RECORD) :]
    return _prefix(scope) + _BY_EXPIRY + _U64.pack(expire_ms) + tail


def _drop(batch: WriteBatch, scope: Scope, where: bytes, expire_ms: int) -> None:
    batch.delete(where)
    batch.delete(_expiry_entry(scope, where, expire_ms))
    _add_count(batch, scope, -1)


def _purge(batch: WriteBatch, scope: Scope, now_ms: int, limit: int) -> int:
    """Drop up to `limit` ids expired at `now_ms` (oldest first); how many."""
    head = _prefix(scope) + _BY_EXPIRY
    rows = batch.scan(head, head + _U64.pack(min(now_ms, _MAX_LIMIT) + 1), limit)
    for key, _ in rows:
        tail = key[len(head) :]
        batch.delete(key)
        batch.delete(_prefix(scope) + _RECORD + tail[8:])
    if rows:
        _add_count(batch, scope, -len(rows))
    return len(rows)


def has_expired(reader: KeyspaceReader, scope: Scope, now_ms: int) -> bool:
    """Whether the scope's table holds an id expired at `now_ms` (the leader then
    proposes `PURGE_COMMAND`): one read of the expiry index's first entry."""
    head = _prefix(scope) + _BY_EXPIRY
    return bool(reader.scan(head, head + _U64.pack(min(now_ms, _MAX_LIMIT) + 1), 1))


def earliest_request_expiry(reader: KeyspaceReader, scope: Scope) -> int | None:
    """When the scope's first request id expires (None: the table is empty): one read
    of the expiry index's first entry. `has_expired` is then `earliest <= now_ms`, so
    the machine reads again only after an entry that changed the table."""
    head = _prefix(scope) + _BY_EXPIRY
    first = reader.scan(head, prefix_end(head), 1)
    return int(_U64.unpack_from(first[0][0], len(head))[0]) if first else None


# -- splits and merges ------------------------------------------------------------------


def split_requests(batch: WriteBatch, left: Scope, right: Scope, split_key: bytes) -> int:
    """Move the records whose first key lies at or past range key `split_key` from
    `left`'s table (the region before the split, same id) to `right`'s; how many."""
    family = _prefix(left) + _RECORD
    end = prefix_end(family)
    moved = []
    for where, raw in batch.scan(family + split_key[:2], end):
        value = _unpack(raw)
        first_key = value[2]
        assert isinstance(first_key, bytes)
        if range_key(first_key) >= split_key:
            moved.append((where, value))
    for where, value in moved:
        _move(batch, left, right, where, value)
    return len(moved)


def move_requests(batch: WriteBatch, source: Scope, target: Scope) -> int:
    """Move every record of `source`'s table into `target`'s (a merge: the target takes
    the source's keys); how many. Run before the source's system records are deleted."""
    family = _prefix(source) + _RECORD
    rows = batch.scan(family, prefix_end(family))
    for where, raw in rows:
        _move(batch, source, target, where, _unpack(raw))
    return len(rows)


def _move(batch: WriteBatch, src: Scope, dst: Scope, where: bytes, value: list[object]) -> None:
    expire_ms = value[0]
    assert isinstance(expire_ms, int)
    _drop(batch, src, where, expire_ms)
    into = _prefix(dst) + where[len(_prefix(src)) :]
    existing = batch.get(into)
    if existing is not None:  # both sides of a slot the split cut knew the id
        old_expiry = _unpack(existing)[0]
        assert isinstance(old_expiry, int)
        if old_expiry >= expire_ms:
            return
        _drop(batch, dst, into, old_expiry)
    _put(batch, dst, into, value)
    _add_count(batch, dst, 1)


# -- replies as bytes -------------------------------------------------------------------


def encode_reply(reply: Reply) -> bytes:
    """`reply` as msgpack, every RESP3 type kept (a retry may come over RESP2 or RESP3);
    TypeError for anything else."""
    return bytes(msgpack.packb(_tree(reply), use_bin_type=True))


def decode_reply(data: bytes) -> Reply:
    """The inverse of `encode_reply`."""
    return _untree(msgpack.unpackb(data, raw=False, strict_map_key=False))


def _tree(reply: Reply) -> list[object]:
    if isinstance(reply, SimpleString):
        return ["+", reply.value]
    if isinstance(reply, ErrorReply):
        return ["-", reply.message]
    if isinstance(reply, Integer):
        return [":", reply.value]
    if isinstance(reply, Bulk):
        return ["$", reply.value]
    if isinstance(reply, NullBulk):
        return ["_"]
    if isinstance(reply, NullArray):
        return ["*-"]
    if isinstance(reply, Double):
        return [",", reply.value]
    if isinstance(reply, Boolean):
        return ["#", reply.value]
    if isinstance(reply, Verbatim):
        return ["=", reply.text, reply.format]
    if isinstance(reply, Array | Set | Push):
        return [_ITEM_TAGS[type(reply)], [_tree(item) for item in reply.items]]
    if isinstance(reply, Map | Pairs | NestedMap):
        return [_PAIR_TAGS[type(reply)], [[_tree(k), _tree(v)] for k, v in reply.pairs]]
    raise TypeError(f"no stored form for a {type(reply).__name__} reply")


_ITEM_TAGS: dict[type, str] = {Array: "*", Set: "~", Push: ">"}
_PAIR_TAGS: dict[type, str] = {Map: "%", Pairs: "p", NestedMap: "n"}
_ITEM_TYPES = {tag: kind for kind, tag in _ITEM_TAGS.items()}
_PAIR_TYPES = {tag: kind for kind, tag in _PAIR_TAGS.items()}


def _untree(node: list[Any]) -> Reply:
    """A reply from its `_tree` (msgpack gives back lists of plain values)."""
    tag, rest = node[0], node[1:]
    simple = _SIMPLE.get(tag)
    if simple is not None:
        return simple(*rest)
    if tag in _ITEM_TYPES:
        return _ITEM_TYPES[tag](tuple(_untree(c) for c in rest[0]))  # type: ignore[no-any-return]
    pairs = tuple((_untree(k), _untree(v)) for k, v in rest[0])
    return _PAIR_TYPES[tag](pairs)  # type: ignore[no-any-return]


_SIMPLE: dict[str, Callable[..., Reply]] = {
    "+": SimpleString,
    "-": ErrorReply,
    ":": Integer,
    "$": Bulk,
    "_": lambda: NULL,
    "*-": lambda: NULL_ARRAY,
    ",": Double,
    "#": Boolean,
    "=": Verbatim,
}


# -- the internal commands' specs -------------------------------------------------------


def _applied_by_machine(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """The internal entries are applied by `apply_idempotency`, never through a handler."""
    raise CommandError(ErrorReply(f"ERR {ctx.name} is applied by the machine only"))


def _internal(name: str, arity: int, key_finder: bool) -> CommandSpec:
    return internal_write(
        name,
        arity,
        _applied_by_machine,
        wrapped_keys if key_finder else None,
        "generic",
        "Internal: an idempotent write (IDEMPOTENT) or the purge of expired ids.",
        "O(1) besides the wrapped command",
    )


TXN_LOCK_COMMAND = "cairn.idem.lock"
"""``cairn.idem.lock <request-id> <digest> <first key> <cairn.txn.lock arguments ...>``:
a tagged cross-region transaction's lock of its primary's region
(`cairn.store.idempotency_txn`)."""
TXN_COMMIT_COMMAND = "cairn.idem.commit"
"""``cairn.idem.commit <request-id> <ttl ms> <max ids> <digest> <reply> <start_ts>
<commit_ts> <key> ...``: its primary commit, recording the request id."""
TXN_COMMIT_HEAD = 7
"""The arguments of `TXN_COMMIT_COMMAND` before its keys."""


def txn_lock_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `TXN_LOCK_COMMAND` entry (argv, name first): those it locks."""
    if len(argv) < 5:
        return []
    try:
        return parse_lock(argv[4:]).every_key()
    except CommandError:
        return []


def txn_commit_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of a `TXN_COMMIT_COMMAND` entry (argv, name first): those it commits."""
    return list(argv[1 + TXN_COMMIT_HEAD :])


def _txn_step(
    name: str, arity: int, finder: Callable[[Sequence[bytes]], list[bytes]]
) -> CommandSpec:
    return internal_write(
        name,
        arity,
        _applied_by_machine,
        finder,
        "transactions",
        "Internal: a step of an idempotent cross-region transaction.",
    )


IDEMPOTENCY_COMMANDS: dict[str, CommandSpec] = {
    IDEM_COMMAND: _internal(IDEM_COMMAND, -6, True),
    PURGE_COMMAND: _internal(PURGE_COMMAND, 1, False),
    TXN_LOCK_COMMAND: _txn_step(TXN_LOCK_COMMAND, -9, txn_lock_keys),
    TXN_COMMIT_COMMAND: _txn_step(TXN_COMMIT_COMMAND, -(2 + TXN_COMMIT_HEAD), txn_commit_keys),
}
"""The internal entries of idempotent writes: not in `COMMANDS`, so no client sends them;
a node forwards `cairn.idem` to a region's leader like any write."""


def prefix_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of ``IDEMPOTENT id command args...``: the wrapped command's (COMMAND
    GETKEYS); none for EXEC, whose keys are those of the queued transaction."""
    wrapped = argv[2:]
    spec = classify(wrapped) if wrapped else None
    return [] if spec is None or isinstance(spec, ErrorReply) else spec.keys(wrapped)
