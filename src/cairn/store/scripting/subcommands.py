"""The subcommands of FUNCTION and SCRIPT as Redis 7.0.15's COMMAND INFO and DOCS list
them (arity, flags, ACL categories, tips, summary), compared with a real redis-server.

FUNCTION and SCRIPT are answered by the node (`front`, `cache`); these records are their
metadata: COMMAND INFO ``function|load`` and the container's subcommand list, and the ACL
categories (`cairn.store.acl.node_categories` holds the same categories for the catalog,
so ``ACL CAT scripting`` and ``-@write`` see ``function|load`` as Redis does).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.store.acl.node_categories import NODE_COMMAND_CATEGORIES

__all__ = ["SUBCOMMANDS", "SubcommandInfo"]


@dataclass(frozen=True, slots=True)
class SubcommandInfo:
    """One subcommand's COMMAND INFO/DOCS metadata (the `CommandMeta` shape)."""

    name: str
    arity: int
    flags: tuple[str, ...]
    since: str
    complexity: str
    summary: str
    tips: tuple[str, ...] = ()
    group: str = "scripting"
    first_key: int = 0
    last_key: int = 0
    step: int = 0

    @property
    def acl_categories(self) -> tuple[str, ...]:
        """Redis's categories of the subcommand (the catalog's, one source)."""
        return NODE_COMMAND_CATEGORIES[self.name]


_ALL_SHARDS = ("request_policy:all_shards", "response_policy:all_succeeded")
_ALL_NODES = ("request_policy:all_nodes", "response_policy:all_succeeded")
_ONE = ("request_policy:all_shards", "response_policy:one_succeeded")
_N_FUNCTIONS = "O(N) where N is the number of functions"
_HELP = "Show helpful text about the different subcommands"

SUBCOMMANDS: dict[str, tuple[SubcommandInfo, ...]] = {
    "function": (
        SubcommandInfo("function|delete", 3, ("write", "noscript"), "7.0.0", "O(1)",
                       "Delete a function by name", _ALL_SHARDS),
        SubcommandInfo("function|dump", 2, ("noscript",), "7.0.0", _N_FUNCTIONS,
                       "Dump all functions into a serialized binary payload"),
        SubcommandInfo("function|flush", -2, ("write", "noscript"), "7.0.0",
                       "O(N) where N is the number of functions deleted",
                       "Deleting all functions", _ALL_SHARDS),
        SubcommandInfo("function|help", 2, ("loading", "stale"), "7.0.0", "O(1)", _HELP),
        SubcommandInfo("function|kill", 2, ("noscript", "allow_busy"), "7.0.0", "O(1)",
                       "Kill the function currently in execution.", _ONE),
        SubcommandInfo("function|list", -2, ("noscript",), "7.0.0", _N_FUNCTIONS,
                       "List information about all the functions",
                       ("nondeterministic_output_order",)),
        SubcommandInfo("function|load", -3, ("write", "denyoom", "noscript"), "7.0.0",
                       "O(1) (considering compilation time is redundant)",
                       "Create a function with the given arguments (name, code, description)",
                       _ALL_SHARDS),
        SubcommandInfo("function|restore", -3, ("write", "denyoom", "noscript"), "7.0.0",
                       "O(N) where N is the number of functions on the payload",
                       "Restore all the functions on the given payload", _ALL_SHARDS),
        SubcommandInfo("function|stats", 2, ("noscript", "allow_busy"), "7.0.0", "O(1)",
                       "Return information about the function currently running (name, "
                       "description, duration)",
                       ("nondeterministic_output", "request_policy:all_shards",
                        "response_policy:special")),
    ),
    "script": (
        SubcommandInfo("script|debug", 3, ("noscript",), "3.2.0", "O(1)",
                       "Set the debug mode for executed scripts."),
        SubcommandInfo("script|exists", -3, ("noscript",), "2.6.0",
                       "O(N) with N being the number of scripts to check (so checking a "
                       "single script is an O(1) operation).",
                       "Check existence of scripts in the script cache.",
                       ("request_policy:all_shards", "response_policy:agg_logical_and")),
        SubcommandInfo("script|flush", -2, ("noscript",), "2.6.0",
                       "O(N) with N being the number of scripts in cache",
                       "Remove all the scripts from the script cache.", _ALL_NODES),
        SubcommandInfo("script|help", 2, ("loading", "stale"), "5.0.0", "O(1)", _HELP),
        SubcommandInfo("script|kill", 2, ("noscript", "allow_busy"), "2.6.0", "O(1)",
                       "Kill the script currently in execution.", _ONE),
        SubcommandInfo("script|load", 3, ("noscript", "stale"), "2.6.0",
                       "O(N) with N being the length in bytes of the script body.",
                       "Load the specified Lua script into the script cache.", _ALL_NODES),
    ),
}  # fmt: skip
"""The subcommands of each container, in name order."""
