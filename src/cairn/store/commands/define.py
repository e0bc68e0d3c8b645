"""How a command table entry is written: `cmd()` and the flag sets and key positions every
type's table shares.

Each value type's module (strings and keys in `table`, the others beside their handlers)
lists its own `CommandSpec`s with `cmd()`; `table.COMMANDS` gathers them all.
"""

from __future__ import annotations

from cairn.store.commands.spec import CommandSpec, Flag, Handler

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
) -> CommandSpec:
    """One table entry. `keys` is (first, last, step) as Redis' key specs give them; `doc`
    is (group, since, complexity, summary); `acl` the space-separated categories."""
    group, since, complexity, summary = doc
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
    )
