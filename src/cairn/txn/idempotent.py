"""A request id on a cross-region transaction: the coordinator's half of idempotent
writes across regions (``IDEMPOTENT <id> EXEC``, ``IDEMPOTENT <id> MSET ...``).

Theory of operation (docs/transactions.md, "Idempotent writes across regions"; the store's
half is `cairn.store.idempotency_txn`). A `RequestTag` given to the `Coordinator` changes
three of its steps, all in the primary's region (the primary is the request's first key,
whose slot keeps the request id record, as for a single-region request):

- the primary region's lock is `cairn.idem.lock`: when the id is already recorded, it
  answers the recorded reply (``final``) and locks nothing; the coordinator rolls back the
  other regions' locks and answers that reply;
- the primary commit is `cairn.idem.commit`: it commits and records the reply in ONE
  entry, or, should the id have been recorded meanwhile, rolls back and answers
  ``final`` (then so does the coordinator, after rolling back the other regions);
- a transaction that changed nothing still commits its primary (with no effects), so its
  reply is recorded like any outcome, as a single-region request's is.

The reply recorded is what the client gets: the EXEC array, or for a one-command request
(`single`) that command's reply, so a retry that finds the record, in one region or
several, answers exactly what the first run answered.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, ErrorReply, Reply
from cairn.store.idempotency_entries import (
    TXN_COMMIT_COMMAND,
    TXN_LOCK_COMMAND,
    request_digest,
    request_key,
    transaction_request_key,
)
from cairn.store.idempotency_table import MAX_KEPT_REPLY
from cairn.store.idempotency_txn import final_reply
from cairn.store.reply_codec import decode_reply, encode_reply
from cairn.store.transaction import TXN_COMMAND, encode_transaction
from cairn.txn.protocol import COMMIT_COMMAND, LOCK_COMMAND

__all__ = ["RequestTag", "command_tag", "exec_tag"]

UNREADABLE = ErrorReply("ERR the recorded reply of this request id could not be read")


@dataclass(slots=True)
class RequestTag:
    """The request id of one tagged cross-region request, and how it is recorded."""

    request_id: bytes
    digest: bytes
    """`cairn.store.idempotency.request_digest` of the wrapped command or transaction."""
    ttl_ms: int
    max_ids: int
    first_key: bytes | None = None
    """The request's first key (`request_key`): its slot keeps the record, so it is the
    transaction's primary."""
    single: bool = False
    """A one-command request: its reply is the command's own, not an array of one."""

    def lock_argv(self, primary: bytes, argv: list[bytes]) -> list[bytes]:
        """The primary region's lock: `argv` (a `cairn.txn.lock`) checking the id first."""
        assert argv[0] == LOCK_COMMAND.encode()
        return [TXN_LOCK_COMMAND.encode(), self.request_id, self.digest, primary, *argv[1:]]

    def commit_argv(self, argv: list[bytes], replies: Sequence[Reply]) -> list[bytes]:
        """The primary commit: `argv` (a primary `cairn.txn.commit`) recording the id
        with the reply the client gets."""
        assert argv[0] == COMMIT_COMMAND.encode() and argv[3] == b"1"
        start_ts, commit_ts, keys = argv[1], argv[2], argv[4:]
        blob = _encoded(self.client_reply(replies))
        head = [TXN_COMMIT_COMMAND.encode(), self.request_id, b"%d" % self.ttl_ms]
        return [*head, b"%d" % self.max_ids, self.digest, blob, start_ts, commit_ts, *keys]

    def client_reply(self, replies: Sequence[Reply]) -> Reply:
        """What the client is answered (and what is recorded) for these replies."""
        if self.single and len(replies) == 1:
            return replies[0]
        return Array(tuple(replies))

    def final(self, reply: Reply) -> Reply | None:
        """The reply a region's ``final`` answer carries (None: not one): the run ends
        with it, nothing applied by this run."""
        blob = final_reply(reply)
        if blob is None:
            return None
        try:
            decoded = decode_reply(blob)
        except Exception:  # msgpack and the tree raise several unrelated types
            decoded = UNREADABLE
        return decoded


def _encoded(reply: Reply) -> bytes:
    """`reply` as the record keeps it; b"" when it cannot be kept (too large, a type the
    table cannot hold): a retry then answers that the reply was not kept."""
    try:
        blob = encode_reply(reply)
    except TypeError:
        return b""
    return blob if len(blob) <= MAX_KEPT_REPLY else b""


def exec_tag(
    request_id: bytes,
    watches: Sequence[tuple[bytes, bytes]],
    commands: Sequence[Sequence[bytes]],
    ttl_ms: int,
    max_ids: int,
) -> RequestTag:
    """The tag of ``IDEMPOTENT <id> EXEC`` over `commands` (recorded with the digest a
    single-region run of the same transaction records: its commands, not its watches)."""
    payload = encode_transaction(watches, commands)
    digest = request_digest([TXN_COMMAND.encode(), payload])
    first = transaction_request_key(watches, commands)
    return RequestTag(request_id, digest, ttl_ms, max_ids, first)


def command_tag(request_id: bytes, argv: Sequence[bytes], ttl_ms: int, max_ids: int) -> RequestTag:
    """The tag of ``IDEMPOTENT <id> <command> ...`` (`argv`: the command, its canonical
    lowercase name first, as `cairn.idem` carries it)."""
    digest, first = request_digest(list(argv)), request_key(list(argv))
    return RequestTag(request_id, digest, ttl_ms, max_ids, first, single=True)
