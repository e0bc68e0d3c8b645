"""Tagged scripts: ``IDEMPOTENT <id> EVAL/FCALL ...`` (or a tagged EXEC queueing a
script) run once on the region's leader, their effects and their request id one entry.

Theory of operation (the leader's side is `cairn.shard.script_effects`, the effects are
`cairn.store.scripting.effects`). The leader first answers a retry from the table without
running anything (`known_reply`). Otherwise it runs the script for its effects and
proposes ``cairn.idem <request-id> <ttl ms> <max ids> cairn.effects <effects>
<record-key> <digest>`` (`tag_effects`): the key whose slot keeps the id and the digest
of the script command the client sent travel with the effects, since no replica sees
the script any more. The apply (`apply_tagged_effects`) answers a recorded id with its
first outcome, else applies the effects and records the id in the same batch; effects
that are stale (a key the script used changed since it ran) write nothing and record
nothing, and the leader runs the script again.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.idempotency_entries import (
    DIGEST_BYTES,
    EFFECTS_WRAPPED,
    IDEM_COMMAND,
    MALFORMED,
    parse_entry,
    request_digest,
    request_key,
    wrapped_keys,
)
from cairn.store.idempotency_table import (
    answer,
    live_record,
    record,
    record_key,
    recorded_answer,
)
from cairn.store.keyspace import Keyspace, KeyspaceReader, write_batch
from cairn.store.notifications import Event
from cairn.store.scope import KeyOutOfRangeError, Scope
from cairn.store.scripting.effects import STALE, apply_effects
from cairn.store.slot import key_slot

__all__ = ["apply_tagged_effects", "known_reply", "tag_effects"]


def tag_effects(args: Sequence[bytes], effects: bytes) -> list[bytes] | None:
    """The `cairn.idem` entry (name first) recording `args`' request id (a `cairn.idem`
    entry's arguments wrapping a script) with `effects`, the run's `encode_effects`, in
    the same entry; None when `args` is malformed (it is then proposed as it is)."""
    found = _tagged_request(args)
    if found is None:
        return None
    _, wrapped, first = found
    head = [IDEM_COMMAND.encode(), *args[:3]]
    return [*head, EFFECTS_WRAPPED, effects, first, request_digest(wrapped)]


def _tagged_request(
    args: Sequence[bytes],
) -> tuple[tuple[bytes, int, int, list[bytes]], list[bytes], bytes] | None:
    """`cairn.idem` entry `args` parsed, its wrapped command, and the key its record
    lives with (the request's first key); None when malformed or keyless."""
    parsed = parse_entry(args)
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
    known = live_record(reader, record_key(scope, key_slot(first), parsed[0]), now_ms)
    if known is None:
        return None
    return answer(known, request_digest(wrapped))


def apply_tagged_effects(
    keyspace: Keyspace,
    scope: Scope,
    index: int,
    now_ms: int,
    parsed: tuple[bytes, int, int, list[bytes]],
    events: list[Event] | None,
) -> Reply:
    """Apply a tagged script's effects (`parsed`: its `cairn.idem` entry's `parse_entry`)
    at most once: the first outcome for a recorded id, else the effects and the record
    together (nothing recorded when they are stale: the leader runs the script again)."""
    request_id, ttl_ms, max_ids, wrapped = parsed
    if len(wrapped) != 4 or len(wrapped[3]) != DIGEST_BYTES:
        return MALFORMED
    _, effects, first, digest = wrapped
    try:
        scope.check_keys([first])
    except KeyOutOfRangeError:
        return ErrorReply("TRYAGAIN key outside this region's range: route it again")
    where = record_key(scope, key_slot(first), request_id)
    known = recorded_answer(keyspace, scope, where, now_ms, digest, max_ids)
    if known is not None:
        return known
    reply = apply_effects(keyspace, scope, index, now_ms, effects, events)
    if reply is STALE or (
        isinstance(reply, ErrorReply) and reply.message.startswith(("TRYAGAIN", "ERR malformed"))
    ):
        return reply  # nothing written: nothing recorded
    with write_batch(keyspace) as batch:
        record(batch, scope, where, now_ms + ttl_ms, digest, first, reply)
    return reply
