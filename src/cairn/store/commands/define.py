"""How a command table entry is written: `cmd()` and the flag sets and key positions every
type's table shares.

Each value type's module (strings and keys in `table`, the others beside their handlers)
lists its own `CommandSpec`s with `cmd()`; `table.COMMANDS` gathers them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.store.commands.spec import CommandSpec, Flag, Handler, KeyFinder

W = frozenset({Flag.WRITE})
WD = frozenset({Flag.WRITE, Flag.DENYOOM})
WDF = frozenset({Flag.WRITE, Flag.DENYOOM, Flag.FAST})
WF = frozenset({Flag.WRITE, Flag.FAST})
R = frozenset({Flag.READONLY})
RF = frozenset({Flag.READONLY, Flag.FAST})

MULTI_SHARD = ("request_policy:multi_shard",)
ALL_SHARDS = ("request_policy:all_shards",)

K1 = (1, 1, 1)
"""Key positions: the first argument is the only key."""
KALL = (1, -1, 1)
"""Key positions: every argument is a key."""
KPAIRS = (1, -1, 2)
"""Key positions: every other argument, from the first, is a key."""
NOKEYS = (0, 0, 0)
O1 = "O(1)"


def cmd(
    name: str,
    arity: int,
    flags: frozenset[Flag],
    keys: tuple[int, int, int],
    doc: tuple[str, str, str, str],
    acl: str,
    handler: Handler,
    tips: tuple[str, ...] = (),
    key_finder: KeyFinder | None = None,
) -> CommandSpec:
    """One table entry. `keys` is (first, last, step) as Redis' key specs give them; `doc`
    is (group, since, complexity, summary); `acl` the space-separated categories;
    `key_finder` for movable keys (the MOVABLEKEYS flag is added)."""
    group, since, complexity, summary = doc
    if key_finder is not None:
        flags = flags | {Flag.MOVABLEKEYS}
    return CommandSpec(
        name=name,
        arity=arity,
        flags=flags,
        first_key=keys[0],
        last_key=keys[1],
        step=keys[2],
        group=group,
        since=since,
        complexity=complexity,
        summary=summary,
        handler=handler,
        acl_categories=tuple(acl.split()),
        tips=tips,
        key_finder=key_finder,
    )


def numkeys_keys(at: int, before: tuple[int, ...] = ()) -> KeyFinder:
    """The key finder of a command whose argument `at` (argv index, name at 0) counts the
    keys that follow it (LMPOP, SINTERCARD, ZUNION, ...); `before` lists fixed key positions
    ahead of it (ZUNIONSTORE's destination). A count that is not a positive integer finds no
    counted keys (the handler gives the error); one past the end finds what is there."""

    def find(argv: Sequence[bytes]) -> list[bytes]:
        found = [argv[i] for i in before if i < len(argv)]
        raw = argv[at] if at < len(argv) else b""
        count = int(raw) if raw.isdigit() and len(raw) < 19 else 0
        return found + list(argv[at + 1 : at + 1 + count])

    return find
