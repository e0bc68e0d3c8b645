"""Idempotent writes: a request id applied at most once, its first reply kept for retries.

Theory of operation. A client tags a write with ``IDEMPOTENT <request-id> <command> ...``
(or a transaction with ``IDEMPOTENT <request-id> EXEC``). The node that takes the command
rewrites it into the internal write `IDEM_COMMAND`::

    cairn.idem <request-id> <ttl ms> <max ids> <command> [args ...]

stamping in its configured time to live and table cap (`Limits.idempotency_ttl_ms`,
`idempotency_max_ids`), so every replica applies the entry with the same settings. It is
routed by the wrapped command's keys and proposed as ONE Raft entry, so the decision to
apply or to answer from the table is made at apply, deterministically, on every replica.

The pieces: this module takes the client's prefix (`tag_command`, `tag_transaction`) and
applies the entries (`apply_idempotency`); the entries' format, keys and digest are
`cairn.store.idempotency_entries`; the replicated table of request ids (records keyed by
the slot of the request's first key, an expiry index, a count; moved by splits and
merges) is `cairn.store.idempotency_table`; replies are stored by
`cairn.store.reply_codec`; a tagged script's effects are `cairn.store.idempotency_effects`
and a tagged cross-region transaction's steps `cairn.store.idempotency_txn`.

Applying `cairn.idem` at time ``now`` (`apply_idempotency`): a few expired ids
(`idempotency_table.PURGE_ON_WRITE`) are dropped first; then if the id is present and
unexpired, its stored reply is the answer and nothing else happens (or an error when the
id was first used with another command: the digest of the wrapped command differs);
otherwise the wrapped command (or transaction) runs exactly as an untagged one would, and
its reply is recorded with expiry ``now + ttl``. A TRYAGAIN (a key outside the region:
the router retries) is never recorded: the command was not run. Every other reply is,
errors included: the answer to a retry is the first outcome, and a command that failed
left no other trace. The digest check ("same id, another command") covers what the table
can see: the same id in the same slot.

Limits: a request id is 1 to `MAX_REQUEST_ID` bytes; the table holds at most `max ids`
live ids per region: a new id beyond that is refused (`table_full`: nothing applied: the
client may retry later or untagged), never silently evicting a live id, which would break
the at-most-once promise. A reply larger than `MAX_KEPT_REPLY` bytes is not kept: a retry
is answered `REPLY_NOT_KEPT` (the write is still applied once; both names are the
table's). Expired ids go by the purge on each tagged write and by `PURGE_COMMAND`, which
a region's leader proposes when `StoreMachine.has_expired_requests` (`cairn.runtime.node`'s
active expiry).
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import ErrorReply, Integer, Reply
from cairn.store.commands import CommandSpec, Flag, classify, run_in_batch
from cairn.store.idempotency_effects import apply_tagged_effects
from cairn.store.idempotency_entries import (
    EFFECTS_WRAPPED,
    IDEM_COMMAND,
    IDEMPOTENCY_COMMANDS,
    MALFORMED,
    MAX_REQUEST_ID,
    PURGE_COMMAND,
    TXN_COMMIT_COMMAND,
    TXN_LOCK_COMMAND,
    parse_entry,
    request_digest,
    request_key,
    wrapped_keys,
)
from cairn.store.idempotency_table import (
    PURGE_BATCH,
    purge,
    record,
    record_key,
    recorded_answer,
)
from cairn.store.idempotency_txn import apply_idempotent_txn
from cairn.store.keyspace import Keyspace, write_batch
from cairn.store.layout import encode_stamp
from cairn.store.notifications import Event
from cairn.store.scope import KeyOutOfRangeError, Scope
from cairn.store.slot import key_slot
from cairn.store.transaction import TXN_COMMAND, apply_transaction

__all__ = [
    "BAD_ID",
    "DEFAULT_MAX_IDS",
    "DEFAULT_TTL_MS",
    "INSIDE_MULTI",
    "PREFIX",
    "apply_idempotency",
    "checked_argv",
    "prefix_keys",
    "tag_command",
    "tag_transaction",
]

PREFIX = "idempotent"
"""The client-visible prefix command: ``IDEMPOTENT <request-id> <command> [args ...]``."""

DEFAULT_TTL_MS = 600_000
"""How long a request id is remembered by default: 10 minutes (DynamoDB's client request
tokens live as long): far beyond a client's retry loop across a failover or a restart."""
DEFAULT_MAX_IDS = 100_000
"""Live request ids a region holds by default (~170 tagged writes a second for 10 min)."""

BAD_ID = ErrorReply(f"ERR the request id must be 1 to {MAX_REQUEST_ID} bytes")
INSIDE_MULTI = ErrorReply(
    "ERR IDEMPOTENT is not allowed inside MULTI: tag the whole transaction with "
    "IDEMPOTENT <request-id> EXEC"
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


def prefix_keys(argv: Sequence[bytes]) -> list[bytes]:
    """The keys of ``IDEMPOTENT id command args...``: the wrapped command's (COMMAND
    GETKEYS); none for EXEC, whose keys are those of the queued transaction."""
    wrapped = argv[2:]
    spec = classify(wrapped) if wrapped else None
    return [] if spec is None or isinstance(spec, ErrorReply) else spec.keys(wrapped)


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
    """Apply internal entry `name` (one of `IDEMPOTENCY_COMMANDS`, `args` without the
    name) at log `index` and time `now_ms`, inside the machine's transaction."""
    if name == PURGE_COMMAND:
        with write_batch(keyspace) as batch:
            return Integer(purge(batch, scope, now_ms, PURGE_BATCH))
    if name in (TXN_LOCK_COMMAND, TXN_COMMIT_COMMAND):  # across regions: its own module
        return apply_idempotent_txn(keyspace, scope, index, now_ms, name, args, events)
    parsed = parse_entry(args)
    if isinstance(parsed, ErrorReply):
        return parsed
    request_id, ttl_ms, max_ids, wrapped = parsed
    if wrapped[0] == EFFECTS_WRAPPED:  # a tagged script run on the leader: its effects
        return apply_tagged_effects(keyspace, scope, index, now_ms, parsed, events)
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
    where = record_key(scope, key_slot(first), request_id)
    digest = request_digest(wrapped)
    known = recorded_answer(keyspace, scope, where, now_ms, digest, max_ids)
    if known is not None:
        return known
    reply = _run_wrapped(keyspace, scope, index, now_ms, wrapped, events)
    if isinstance(reply, ErrorReply) and reply.message.startswith("TRYAGAIN"):
        return reply
    with write_batch(keyspace) as batch:
        record(batch, scope, where, now_ms + ttl_ms, digest, first, reply)
    return reply


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
