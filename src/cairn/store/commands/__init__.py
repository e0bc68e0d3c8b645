"""The store's commands: the table, argument validation, and running a handler.

`classify(argv)` is what the server calls first on a client's command: it names the
`CommandSpec` (whose flags say whether to propose it through Raft or serve it as a read) or
the exact Redis error for an unknown command or a wrong number of arguments. `run` executes
a handler against a `Db` and turns a `CommandError` into its reply.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cairn.resp.reply import ErrorReply, Reply
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import CommandSpec, Ctx, Flag, arity_error, text_of
from cairn.store.commands.table import COMMANDS, EXPIRE_DELETE, INTERNAL_COMMANDS
from cairn.store.db import Db
from cairn.store.encodings import DEFAULT_SETTINGS, ObjectSettings
from cairn.store.keyspace import Keyspace
from cairn.store.notifications import Event
from cairn.store.scope import Scope

__all__ = [
    "COMMANDS",
    "EXPIRE_DELETE",
    "INTERNAL_COMMANDS",
    "CommandError",
    "CommandSpec",
    "Flag",
    "arity_error",
    "classify",
    "run",
    "run_in_batch",
    "unknown_command",
]

_QUOTE_BUDGET = 128


def _c_string(data: bytes) -> bytes:
    """What C's `%s` prints of Redis' NUL-terminated argument."""
    return data.split(b"\0", 1)[0]


def unknown_command(argv: Sequence[bytes]) -> ErrorReply:
    """Redis' reply to an unknown command: the name and up to ~128 bytes of arguments."""
    quoted = b""
    for arg in argv[1:]:
        if len(quoted) >= _QUOTE_BUDGET:
            break
        quoted += b"'" + _c_string(arg)[: _QUOTE_BUDGET - len(quoted)] + b"' "
    name = _c_string(argv[0])[:128] if argv else b""
    return ErrorReply(
        f"ERR unknown command '{text_of(name)}', with args beginning with: {text_of(quoted)}"
    )


def classify(argv: Sequence[bytes]) -> CommandSpec | ErrorReply:
    """The spec of the command `argv` (name first), or the error reply Redis would give for
    an unknown name or a wrong argument count."""
    if not argv:
        return unknown_command(argv)
    spec = COMMANDS.get(argv[0].lower().decode("utf-8", "replace"))
    if spec is None:
        return unknown_command(argv)
    if not spec.arity_ok(len(argv)):
        return arity_error(spec.name)
    return spec


def run(
    spec: CommandSpec,
    db: Db,
    args: Sequence[bytes],
    rng: random.Random | None,
    seed: int = 0,
    settings: ObjectSettings = DEFAULT_SETTINGS,
) -> Reply:
    """Run `spec`'s handler on `args` (without the name); raises `CommandError`, which the
    caller turns into the reply after discarding the command's writes.

    `rng` None: a replicated write, whose random draws come from a source seeded by `seed`
    (the entry's index), the same on every replica. `settings`: the serving node's OBJECT
    settings (reads only)."""
    return spec.handler(Ctx(db, db.now_ms, spec.name, rng, seed, settings), args)


def run_in_batch(
    keyspace: Keyspace,
    spec: CommandSpec,
    args: Sequence[bytes],
    now_ms: int,
    scope: Scope,
    stamp: bytes,
    seed: int,
    events: list[Event] | None = None,
) -> Reply:
    """Run write command `spec` in a batch of its own, stamping the keys it changes with
    `stamp`: the batch is committed when the command succeeds and discarded when it fails
    (its error reply is the answer). What applying one Raft entry, or one command of a
    transaction, does. `events` (not None: collecting keyspace notifications) receives
    the command's notifications when it succeeds."""
    batch = keyspace.begin()
    try:
        db = Db(keyspace, batch, now_ms, scope, stamp)
        if events is not None:
            db.events = []
        reply = run(spec, db, args, None, seed)
        db.finish_stamps()
    except CommandError as err:
        batch.abort()
        return err.reply
    except BaseException:
        batch.abort()
        raise
    batch.commit()
    if db.events:
        events.extend(db.events)  # type: ignore[union-attr]  # set above when not None
    return reply
