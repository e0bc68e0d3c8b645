"""The request table of idempotent writes: which request ids a region has applied, until
when, and with which first reply.

Theory of operation. The table is replicated state under the machine's system prefix
(``X`` for the whole keyspace, ``Xr | region id`` for a region), three record families:

- ``idem: | slot | request id`` -> msgpack ``[expire ms, digest, first key, reply]``:
  one per live request id, keyed by the hash slot of the request's first key
  (`cairn.store.idempotency_entries.request_key`), the reply as `encode_reply` stores it
  (nil: not kept);
- ``idemt | expire ms (8 bytes) | slot | request id`` -> empty: the same ids ordered by
  expiry, so the expired ones are found first without a scan;
- ``idemn`` -> how many ids the table holds (the cap's count).

A tagged write looks its id up (`recorded_answer`: expired ids purged first, then the
recorded answer, or the table-full refusal), runs, and records its reply (`record`). An
id found again answers its first reply, or `MISMATCH` when the id was first used with
another command (the digests differ), or `REPLY_NOT_KEPT` when that reply was larger than
`MAX_KEPT_REPLY`.

Why keyed by slot: a retry is routed by its first key, so its record must live with that
key through splits and merges. A split moves the records of the slots past the split key
to the new half (and, for the one slot the split key may cut, those whose first key lies
on the right), a merge moves the source's into the target (`split_requests`,
`move_requests`): O(records moved), like the per-slot key counts.

Pure: no I/O.
"""

from __future__ import annotations

import struct

import msgpack

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.keyspace import Keyspace, KeyspaceReader, WriteBatch, write_batch
from cairn.store.layout import SYSTEM_TAG, prefix_end, region_system_prefix
from cairn.store.reply_codec import decode_reply, encode_reply
from cairn.store.scope import Scope, range_key

__all__ = [
    "MAX_KEPT_REPLY",
    "MISMATCH",
    "PURGE_BATCH",
    "PURGE_ON_WRITE",
    "REPLY_NOT_KEPT",
    "answer",
    "check_image_record",
    "earliest_request_expiry",
    "live_record",
    "move_requests",
    "purge",
    "record",
    "record_encoded",
    "record_key",
    "recorded_answer",
    "request_count",
    "split_requests",
    "table_full",
]

MAX_KEPT_REPLY = 64 << 10
"""The largest encoded reply kept for retries; a larger one is answered `REPLY_NOT_KEPT`."""
PURGE_ON_WRITE = 8
"""Expired ids each tagged write drops first (more than it adds: the table cannot grow
with expired ids while tagged writes arrive)."""
PURGE_BATCH = 256
"""Expired ids one purge entry drops at most (`idempotency_entries.PURGE_COMMAND`)."""

MAX_LIMIT = 1 << 62
"""The bound of a time to live, a cap and a purge's time (all below it)."""
_RECORD = b"idem:"
_BY_EXPIRY = b"idemt"
_COUNT = b"idemn"
_U64 = struct.Struct(">Q")
_SLOT = struct.Struct(">H")

MISMATCH = ErrorReply(
    "ERR this request id was already used for a different command: use a new id per request"
)
REPLY_NOT_KEPT = ErrorReply(
    "ERR this request was already applied; its reply was too large to keep for a retry"
)


def table_full(max_ids: int) -> ErrorReply:
    """The refusal of a new request id when the region's table holds `max_ids` live ones."""
    return ErrorReply(
        f"ERR too many live request ids in this region (at most {max_ids}, "
        "limits.idempotency_max_ids): nothing was applied, retry later"
    )


# -- looking a request up ---------------------------------------------------------------


def recorded_answer(
    keyspace: Keyspace,
    scope: Scope,
    where: bytes,
    now_ms: int,
    digest: bytes,
    max_ids: int | None,
) -> Reply | None:
    """The final answer to the request recorded at `where` (its first reply, or
    `MISMATCH` for another `digest`), or the table-full refusal when it is new and the
    table holds `max_ids` ids (None: no cap checked); None: run it. Up to
    `PURGE_ON_WRITE` expired ids are dropped first."""
    with write_batch(keyspace) as batch:
        purge(batch, scope, now_ms, PURGE_ON_WRITE)
        known = lookup(batch, scope, where, now_ms)
        if known is not None:
            return answer(known, digest)
        if max_ids is not None and decode_count(batch.get(count_key(scope))) >= max_ids:
            return table_full(max_ids)
    return None


def answer(known: list[object], digest: bytes) -> Reply:
    """The answer to a retry of recorded request `known` whose command has `digest`."""
    _, stored_digest, _, blob = known
    if stored_digest != digest:
        return MISMATCH
    if not isinstance(blob, bytes):
        return REPLY_NOT_KEPT
    return decode_reply(blob)


def lookup(batch: WriteBatch, scope: Scope, where: bytes, now_ms: int) -> list[object] | None:
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


def live_record(reader: KeyspaceReader, where: bytes, now_ms: int) -> list[object] | None:
    """The record at `where` if it is live at `now_ms`, read without writing (an
    expired one is left for a write to drop)."""
    raw = reader.get(where)
    if raw is None:
        return None
    known = _unpack(raw)
    expire_ms = known[0]
    if not isinstance(expire_ms, int) or expire_ms <= now_ms:
        return None
    return known


# -- the records ------------------------------------------------------------------------


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


def record_key(scope: Scope, slot: int, request_id: bytes) -> bytes:
    """The key of the record of `request_id` in `slot` of `scope`'s table."""
    return _prefix(scope) + _RECORD + _SLOT.pack(slot) + request_id


def count_key(scope: Scope) -> bytes:
    """The key of `scope`'s table's count."""
    return _prefix(scope) + _COUNT


def decode_count(raw: bytes | None) -> int:
    """A stored count (a missing record is 0)."""
    return 0 if raw is None else int(_U64.unpack(raw)[0])


def request_count(reader: KeyspaceReader, scope: Scope) -> int:
    """How many request ids (live or expired, not yet purged) the scope's table holds."""
    return decode_count(reader.get(count_key(scope)))


def _add_count(batch: WriteBatch, scope: Scope, delta: int) -> None:
    value = max(0, decode_count(batch.get(count_key(scope))) + delta)
    if value:
        batch.put(count_key(scope), _U64.pack(value))
    else:
        batch.delete(count_key(scope))


def _unpack(raw: bytes) -> list[object]:
    value = msgpack.unpackb(raw, raw=False)
    assert isinstance(value, list) and len(value) == 4
    return value


def record(
    batch: WriteBatch,
    scope: Scope,
    where: bytes,
    expire_ms: int,
    digest: bytes,
    first_key: bytes,
    reply: Reply,
) -> None:
    """Record a request id at `where` with its first `reply` (one with no stored form,
    or too large, is kept as not kept)."""
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


# -- expiry -----------------------------------------------------------------------------


def purge(batch: WriteBatch, scope: Scope, now_ms: int, limit: int) -> int:
    """Drop up to `limit` ids expired at `now_ms` (oldest first); how many."""
    head = _prefix(scope) + _BY_EXPIRY
    rows = batch.scan(head, head + _U64.pack(min(now_ms, MAX_LIMIT) + 1), limit)
    for key, _ in rows:
        tail = key[len(head) :]
        batch.delete(key)
        batch.delete(_prefix(scope) + _RECORD + tail[8:])
    if rows:
        _add_count(batch, scope, -len(rows))
    return len(rows)


def earliest_request_expiry(reader: KeyspaceReader, scope: Scope) -> int | None:
    """When the scope's first request id expires (None: the table is empty): one read
    of the expiry index's first entry. Ids have expired at `now_ms` when it is at most
    `now_ms` (the leader then proposes `idempotency_entries.PURGE_COMMAND`); the machine
    reads it again only after an entry that changed the table."""
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
