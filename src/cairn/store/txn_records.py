"""The records of cross-region transactions: a key's lock and a transaction's status
(`cairn.store.txn_locks` runs the commands that read and write them).

Theory of operation (docs/transactions.md, "the store's half"). A lock lives under its
key, ``L | slot | key``; a status under the transaction's primary key,
``S | slot | primary | start_ts`` (`cairn.store.layout`), so both move with their key's
range. A lock's *effect* is what the coordinator prewrote into it: nothing yet (None), a
deletion (kind 0), a DUMP to restore (kind 1), or, for async commit only, the explicit
marker "prewritten, unchanged" (kind 2: the key was locked and read, not changed), so
that "locked, not yet prewritten" and "prewritten" can be told apart for every key of an
async-commit transaction. The primary's lock of an async-commit transaction also holds
the list of every other key the transaction locked (`secondaries`): a reader that finds
the primary undecided checks those keys instead of waiting for the ttl.

Formats (msgpack): version 1, ``[1, start_ts, primary, ttl_ms, locked_at_ms, effect]``
(every lock of a two-phase commit is still written in it, byte for byte as before), and
version 2, ``[2, start_ts, primary, ttl_ms, locked_at_ms, effect, secondaries]``, written
only for a lock holding what version 1 cannot say (the unchanged marker, a secondaries
list). Both are read. A status is ``[1, state, commit_ts, at_ms]``.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from cairn.store.keyspace import KeyspaceReader
from cairn.store.layout import lock_key, status_key

__all__ = [
    "COMMITTED",
    "KIND_DELETE",
    "KIND_RESTORE",
    "KIND_UNCHANGED",
    "ROLLED_BACK",
    "Effect",
    "Lock",
    "Status",
    "decode_lock",
    "decode_status",
    "read_lock",
    "read_status",
]

COMMITTED = 1
ROLLED_BACK = 2
KIND_DELETE = 0
KIND_RESTORE = 1
KIND_UNCHANGED = 2
"""Async commit's "prewritten, nothing to apply" marker (a key locked, not changed)."""
_KINDS = (KIND_DELETE, KIND_RESTORE, KIND_UNCHANGED)
_FORMAT_V1 = 1
_FORMAT_V2 = 2
_STATUS_FORMAT = 1

Effect = tuple[int, int, bytes]
"""A prewritten effect: (kind, absolute pexpireat_ms or 0, payload: a DUMP for kind 1)."""


@dataclass(frozen=True, slots=True)
class Lock:
    """A key's lock: its transaction, primary key, ttl, when it was taken, the prewritten
    effect (None: nothing prewritten yet), and on an async-commit transaction's primary
    the transaction's other locked keys (None: not an async-commit primary)."""

    start_ts: int
    primary: bytes
    ttl_ms: int
    locked_at_ms: int
    effect: Effect | None = None
    secondaries: tuple[bytes, ...] | None = None

    @property
    def prewritten(self) -> bool:
        """Whether the coordinator's prewrite reached this lock."""
        return self.effect is not None

    @property
    def is_async(self) -> bool:
        """Whether this is the prewritten primary lock of an async-commit transaction."""
        return self.secondaries is not None

    def remaining_ms(self, now_ms: int) -> int:
        """The ttl left at `now_ms` (0 once expired)."""
        return max(0, self.locked_at_ms + self.ttl_ms - now_ms)

    def encode(self) -> bytes:
        """The record's stored bytes: version 1 whenever it can say everything."""
        effect = None if self.effect is None else list(self.effect)
        head = [self.start_ts, self.primary, self.ttl_ms, self.locked_at_ms, effect]
        unchanged = self.effect is not None and self.effect[0] == KIND_UNCHANGED
        if self.secondaries is None and not unchanged:
            payload: list[object] = [_FORMAT_V1, *head]
        else:
            secondaries = None if self.secondaries is None else list(self.secondaries)
            payload = [_FORMAT_V2, *head, secondaries]
        return bytes(msgpack.packb(payload, use_bin_type=True))


@dataclass(frozen=True, slots=True)
class Status:
    """A transaction's outcome: `COMMITTED` (with its commit_ts) or `ROLLED_BACK`, and
    the entry time it was written at."""

    state: int
    commit_ts: int
    at_ms: int

    def encode(self) -> bytes:
        """The record's stored bytes."""
        payload = [_STATUS_FORMAT, self.state, self.commit_ts, self.at_ms]
        return bytes(msgpack.packb(payload, use_bin_type=True))


def decode_lock(data: bytes) -> Lock:
    """The inverse of `Lock.encode`, either version (ValueError on anything else)."""
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("malformed lock record") from exc
    if not isinstance(fields, list) or not fields:
        raise ValueError("malformed lock record")
    if fields[0] == _FORMAT_V1 and len(fields) == 6:
        secondaries = None
    elif fields[0] == _FORMAT_V2 and len(fields) == 7:
        secondaries = _secondaries(fields[6])
    else:
        raise ValueError("malformed lock record")
    _, start_ts, primary, ttl_ms, locked_at, effect = fields[:6]
    if not isinstance(primary, bytes):
        raise ValueError("malformed lock record")
    return Lock(int(start_ts), primary, int(ttl_ms), int(locked_at), _effect(effect), secondaries)


def _effect(raw: object) -> Effect | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 3:
        raise ValueError("malformed lock record")
    kind, pexpireat, payload = raw
    if kind not in _KINDS or not isinstance(payload, bytes):
        raise ValueError("malformed lock record")
    return (int(kind), int(pexpireat), bytes(payload))


def _secondaries(raw: object) -> tuple[bytes, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(k, bytes) for k in raw):
        raise ValueError("malformed lock record")
    return tuple(raw)


def decode_status(data: bytes) -> Status:
    """The inverse of `Status.encode` (ValueError on anything else)."""
    try:
        fmt, state, commit_ts, at_ms = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("malformed status record") from exc
    if fmt != _STATUS_FORMAT or state not in (COMMITTED, ROLLED_BACK):
        raise ValueError("malformed status record")
    return Status(int(state), int(commit_ts), int(at_ms))


def read_lock(reader: KeyspaceReader, key: bytes) -> Lock | None:
    """`key`'s lock, or None."""
    raw = reader.get(lock_key(key))
    return None if raw is None else decode_lock(raw)


def read_status(reader: KeyspaceReader, primary: bytes, start_ts: int) -> Status | None:
    """The status record of transaction `start_ts` (primary `primary`), or None."""
    raw = reader.get(status_key(primary, start_ts))
    return None if raw is None else decode_status(raw)
