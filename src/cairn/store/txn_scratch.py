"""The scratch executor of cross-region transactions: a transaction's queued commands run
on the real `StoreMachine` over an in-memory keyspace loaded with the locked keys' values.

Theory of operation (`TXN_SPEC.md` section 4). A cross-region transaction's coordinator
locks every key it touches; the lock replies carry each key's value (whether it exists,
its absolute expiry, its DUMP). `run_scratch` loads those values into a fresh
`MemoryKeyspace` (each through the real RESTORE, unstamped), then applies the queued
commands as ONE `cairn.exec` entry of a fresh `StoreMachine` at `now_ms`, so every reply
is exactly the one a single-region EXEC would give over the same values: per-command
errors, writes of a failed command discarded, blocking commands answering at once, the
randomness seeded by `seed` like an entry's log index. The transaction writes stamp every
key they change (`cairn.store.transaction`), so after the run:

- a key live now whose stamp is the transaction's, or live now and absent before, changed:
  its effect is kind 1 with its DUMP and absolute expiry (0: none);
- a key live before and absent now was deleted: kind 0.

Every key the commands name must be among the loaded ones (they are the keys the
coordinator locked): `ScratchKeyError` otherwise, before anything runs. A script may name
only its declared keys there (the machine's scope is `DECLARED_KEYS_ONLY`,
`cairn.store.scripting.confine`): a call naming another key ends the script with an
error, its writes discarded. Keys created by the commands are found by walking the
scratch keyspace, whatever named them; one that was not loaded is refused the same way,
after the run, since no lock covers it (a safety net: the confinement keeps scripts from
writing one).

Pure: no I/O; the keyspace is in memory and thrown away.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, ErrorReply, Reply
from cairn.store.commands import COMMANDS, CommandSpec, classify, run_in_batch
from cairn.store.commands.dump import serialize
from cairn.store.db import Db
from cairn.store.encodings import DEFAULT_SETTINGS
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.layout import encode_stamp
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.scope import WHOLE_KEYSPACE
from cairn.store.scripting.confine import DECLARED_KEYS_ONLY
from cairn.store.transaction import TXN_COMMAND, encode_transaction

__all__ = [
    "Effect",
    "LoadedValue",
    "ScratchError",
    "ScratchKeyError",
    "ScratchResult",
    "run_scratch",
]

Effect = tuple[int, int, bytes]
"""A changed key's effect: (0 delete / 1 restore, absolute pexpireat_ms or 0, DUMP)."""

LoadedValue = tuple[int, int, bytes | None]
"""A locked key's value as `cairn.txn.lock` answers it: (exists 0/1, pexpireat_ms or 0,
DUMP or None)."""

_WALK_PAGE = 1024
_MAX_SEED = 1 << 40
"""Seeds stand for a log index: the machine shifts them left by 20 bits."""


class ScratchError(ValueError):
    """The scratch run cannot start: a value does not load, a bad seed or time."""


class ScratchKeyError(ScratchError):
    """A queued command names a key that was not loaded (not locked)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(f"key {key!r} is not among the transaction's locked keys")
        self.key = key


@dataclass(frozen=True, slots=True)
class ScratchResult:
    """The replies of the queued commands, in order, and the effect of each key whose
    value changed."""

    replies: list[Reply]
    effects: dict[bytes, Effect]


def run_scratch(
    values: Mapping[bytes, LoadedValue],
    commands: Sequence[Sequence[bytes]],
    now_ms: int,
    seed: int,
) -> ScratchResult:
    """Run `commands` (argv lists, name first) over `values` at `now_ms` (module
    docstring)."""
    if not 0 <= seed < _MAX_SEED or now_ms < 0:
        raise ScratchError(f"bad seed {seed} or time {now_ms}")
    _check_keys(values, commands)
    keyspace = MemoryKeyspace()
    before = _load(keyspace, values, now_ms)
    machine = StoreMachine(keyspace, random.Random(seed), DECLARED_KEYS_ONLY)
    entry = encode_command(TXN_COMMAND, [encode_transaction([], commands)], now_ms)
    reply = machine.apply(seed, entry)
    if not isinstance(reply, Array):  # only a malformed entry: the commands are checked
        raise ScratchError(f"the scratch transaction failed: {reply!r}")
    effects = _effects(keyspace, before, now_ms, seed)
    for key in effects:
        if key not in values:  # a script wrote a key it did not declare
            raise ScratchKeyError(key)
    return ScratchResult(list(reply.items), effects)


def _check_keys(values: Mapping[bytes, LoadedValue], commands: Sequence[Sequence[bytes]]) -> None:
    """`ScratchKeyError` for the first key a command names outside `values` (an unknown
    command or a wrong argument count names none: it answers its error)."""
    for argv in commands:
        spec = classify(argv)
        if not isinstance(spec, CommandSpec):
            continue
        for key in spec.keys(argv):
            if key not in values:
                raise ScratchKeyError(key)


def _load(keyspace: MemoryKeyspace, values: Mapping[bytes, LoadedValue], now_ms: int) -> set[bytes]:
    """Restore every existing, unexpired value (unstamped); the keys loaded."""
    restore = COMMANDS["restore"]
    loaded = set()
    for key, (exists, pexpireat, dump) in values.items():
        if not exists:
            continue
        if dump is None or pexpireat < 0:
            raise ScratchError(f"key {key!r} exists without a value")
        if pexpireat and pexpireat <= now_ms:
            continue  # expired at the transaction's time: absent
        args = [key, b"%d" % pexpireat, dump, b"REPLACE", b"ABSTTL"]
        reply = run_in_batch(keyspace, restore, args, now_ms, WHOLE_KEYSPACE, b"", 0)
        if isinstance(reply, ErrorReply):
            raise ScratchError(f"key {key!r} does not load: {reply.message}")
        loaded.add(key)
    return loaded


def _effects(
    keyspace: MemoryKeyspace, before: set[bytes], now_ms: int, seed: int
) -> dict[bytes, Effect]:
    """The effect of every key the transaction changed (module docstring)."""
    stamp = encode_stamp(0, seed)
    db = Db(keyspace, None, now_ms)
    effects: dict[bytes, Effect] = {}
    live: set[bytes] = set()
    position = db.start_position
    while entries := db.walk(position, _WALK_PAGE):
        for entry in entries:
            if entry.meta.expired(now_ms):
                continue
            live.add(entry.key)
            if entry.meta.stamp == stamp or entry.key not in before:
                dump = serialize(db, entry.key, entry.meta, DEFAULT_SETTINGS)
                effects[entry.key] = (1, entry.meta.expire_ms or 0, dump)
        position = entries[-1].position + b"\x00"
    for key in before - live:
        effects[key] = (0, 0, b"")
    return effects
