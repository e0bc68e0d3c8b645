"""More requests that run as cross-region transactions on a node: multi-key reads, and
requests tagged with a request id (``IDEMPOTENT <id> ...``) whose keys span regions.

Theory of operation (docs/transactions.md). Routing refuses a command whose keys lie in
several regions with CROSSSLOT unless it may run region by region (MGET, EXISTS, DEL ...).
For a connection the node does not redirect (a plain client: `CrossRegion` is asked only
then), the node turns some of those refusals into a cross-region transaction
(`cairn.runtime.txn_wiring.CrossRegion`, the coordinator `cairn.txn.Coordinator`):

- a multi-key **read** (`cross_read`: SINTER, SUNION, SDIFF, SINTERCARD, ZUNION, ZINTER,
  ZDIFF, ZINTERCARD, PFCOUNT, LCS, XREAD without BLOCK) runs as a read-only transaction:
  every key locked at once (one entry per region), the values read in the same entries,
  the command run over them on the scratch machine (so its reply is exactly Redis's), the
  locks rolled back. All values are read under locks held together, so the reply is one
  consistent snapshot, as one command of a single Redis would see;
- ``IDEMPOTENT <id> <write>`` (any taggable write, `tagged_command`) and ``IDEMPOTENT <id>
  EXEC`` (`run_tagged_exec`) run as a transaction with a `cairn.txn.idempotent.RequestTag`:
  the request id is checked at the primary's lock and recorded in the primary commit's
  entry, so the request is applied at most once and a retry answers the first outcome.

A tagged script (``IDEMPOTENT <id> EVAL ...``) is taken like any tagged write: on the
scratch machine it may use only its declared keys, as an untagged one across regions. An
untagged script is not taken here (`cairn.runtime.txn_wiring` runs it), nor a blocking
command (it would have to wait across regions): that keeps CROSSSLOT. A cluster-aware
connection keeps CROSSSLOT for all of them, as from Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cairn.resp.reply import Reply
from cairn.runtime.txn_wiring import CrossRegion
from cairn.shard.routing import CROSSSLOT
from cairn.store import CommandSpec, classify
from cairn.store.commands import Flag
from cairn.store.idempotency_entries import IDEM_COMMAND, IDEMPOTENCY_COMMANDS, TXN_COMMIT_COMMAND
from cairn.store.transaction import TXN_COMMAND
from cairn.txn import Coordinator
from cairn.txn.coordinator import unsupported
from cairn.txn.idempotent import RequestTag, command_tag, exec_tag

__all__ = [
    "WAKING",
    "cross_read",
    "run_tagged",
    "run_tagged_command",
    "run_tagged_exec",
    "tagged_command",
    "tagged_script",
]

Done = Callable[[Reply], None]

WAKING = {TXN_COMMIT_COMMAND: IDEMPOTENCY_COMMANDS[TXN_COMMIT_COMMAND]}
"""Internal writes of this module's requests that may fill keys blocked clients wait on
(the tagged primary commit, like `cairn.txn.commit`): for `BlockingCommands`."""

_SCRIPTS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
_SCRIPT_NAMES = frozenset(name.encode() for name in _SCRIPTS)
_IDEM_NAME = IDEM_COMMAND.encode()
"""`tagged_script` asks these of every command a client sends: kept encoded."""
_STREAM_READS = frozenset({"xread"})
"""Flagged write and blocking in the table (for BLOCK), a read without BLOCK."""


def cross_read(spec: CommandSpec, argv: Sequence[bytes]) -> bool:
    """Whether `argv`, refused as CROSSSLOT, is a multi-key read that runs as a read-only
    cross-region transaction (module docstring)."""
    if spec.name in _SCRIPTS:
        return False
    if spec.name in _STREAM_READS:
        return not _xread_blocks(argv)
    return not spec.is_write and Flag.BLOCKING not in spec.flags


def _xread_blocks(argv: Sequence[bytes]) -> bool:
    """Whether an XREAD names BLOCK among its options (before STREAMS: a key named
    "block" is not an option)."""
    for arg in argv[1:]:
        word = arg.lower()
        if word == b"streams":
            return False
        if word == b"block":
            return True
    return False


def tagged_command(argv: Sequence[bytes], spec: CommandSpec) -> tuple[bytes, list[bytes]] | None:
    """(request id, wrapped command) of a `cairn.idem` entry (`argv`) that may run as a
    tagged cross-region transaction; None: it keeps its CROSSSLOT (not a tagged entry, a
    tagged transaction, a blocking command, SORT with patterns)."""
    if spec.name != IDEM_COMMAND or len(argv) < 6:
        return None
    wrapped = list(argv[4:])
    if wrapped[0] == TXN_COMMAND.encode():
        return None
    inner = classify(wrapped)
    if not isinstance(inner, CommandSpec):
        return None
    if Flag.BLOCKING in inner.flags or unsupported([wrapped]) is not None:
        return None
    return argv[1], wrapped


def tagged_script(argv: Sequence[bytes]) -> bool:
    """Whether `argv` (a `cairn.idem` entry) wraps a script. Such a request runs alone in
    its client's order, as an untagged script does (`cairn.runtime.ordering`): its
    leader, or a cross-region coordinator, runs it over state that must already hold the
    client's earlier writes."""
    return len(argv) > 4 and argv[0] == _IDEM_NAME and argv[4].lower() in _SCRIPT_NAMES


def run_tagged(
    cross: CrossRegion,
    tag: RequestTag,
    watches: Sequence[tuple[bytes, bytes]],
    commands: Sequence[Sequence[bytes]],
    done: Done,
) -> None:
    """Run `commands` as a cross-region transaction tagged with `tag`; `done` gets the
    client's reply (the command's own for a one-command request, else EXEC's array)."""
    if cross.timestamps is None:
        done(CROSSSLOT)
        return
    coordinator = Coordinator(
        watches,
        commands,
        cross.io,
        cross.timestamps,
        cross.scratch,
        cross.settings,
        cross.rng,
        cross.io.now() + cross.request_timeout_s,
        done,
        cross.resolver.resolve,
        tag,
    )
    coordinator.start()


def run_tagged_command(
    cross: CrossRegion,
    request_id: bytes,
    wrapped: list[bytes],
    ttl_ms: int,
    max_ids: int,
    done: Done,
) -> None:
    """``IDEMPOTENT <id> <command>`` over several regions (`tagged_command`'s parts)."""
    tag = command_tag(request_id, wrapped, ttl_ms, max_ids)
    run_tagged(cross, tag, [], [wrapped], done)


def run_tagged_exec(
    cross: CrossRegion,
    request_id: bytes,
    watches: Sequence[tuple[bytes, bytes]],
    commands: Sequence[Sequence[bytes]],
    ttl_ms: int,
    max_ids: int,
    done: Done,
) -> None:
    """``IDEMPOTENT <id> EXEC`` over several regions: the queued store `commands`."""
    tag = exec_tag(request_id, watches, commands, ttl_ms, max_ids)
    run_tagged(cross, tag, watches, commands, done)
