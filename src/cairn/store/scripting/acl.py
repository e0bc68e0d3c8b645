"""The caller's ACL permissions inside a script: each `redis.call` checked as Redis 7.0
checks it, with Redis' error texts.

The script runs while its entry is applied on every replica, where no connection or user
table is at hand: the node that took the command puts the caller's canonical rules in the
script's tail (`front`), and each replica parses them here into the same `User` and runs
the same check (`cairn.store.acl.check`), so all agree on every call's outcome.
"""

from __future__ import annotations

from functools import cache

from cairn.store.acl import Catalog, check, parse_description
from cairn.store.acl.node_categories import NODE_COMMAND_CATEGORIES
from cairn.store.commands.spec import CommandSpec
from cairn.store.scripting.engine import Checker

COMMAND_DENIED = b"ERR The user executing the script can't run this command or subcommand"
KEY_DENIED = (
    b"ERR The user executing the script can't access at least one of the keys mentioned in "
    b"the command arguments"
)
CHANNEL_DENIED = (
    b"ERR The user executing the script can't publish to the channel mentioned in the command"
)
_TEXTS = {"command": COMMAND_DENIED, "key": KEY_DENIED, "channel": CHANNEL_DENIED}


@cache
def script_catalog() -> Catalog:
    """The catalog rules are parsed against: the store's commands with their categories
    and the node-level ones (as a node's catalog, `runtime.acl_commands.node_catalog`)."""
    from cairn.store.commands.table import COMMANDS

    leaves: dict[str, tuple[str, ...]] = {
        name: spec.acl_categories for name, spec in COMMANDS.items() if "." not in name
    }
    for leaf, categories in NODE_COMMAND_CATEGORIES.items():
        leaves.setdefault(leaf, categories)
    return Catalog.build(leaves)


def script_checker(rules: bytes | None) -> Checker | None:
    """The check of each `redis.call` for a caller with canonical ACL `rules` (None or
    empty: a caller who may run everything, nothing to check)."""
    if not rules:
        return None
    catalog = script_catalog()
    user = parse_description("script", rules.decode("utf-8", "surrogateescape"), catalog)

    def checked(argv: list[bytes], spec: CommandSpec | None) -> bytes | None:
        keys = spec.keys(argv) if spec is not None else []
        is_write = spec.is_write if spec is not None else False
        denial = check(user, catalog, argv, keys, is_write)
        return None if denial is None else _TEXTS[denial.reason]

    return checked
