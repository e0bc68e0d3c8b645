"""The node's glue for scripts: FUNCTION libraries through the placement group, and the
caller's ACL rules handed to a script.

FUNCTION LOAD/DELETE/FLUSH/RESTORE on any node become a `SetFunctions` command of the
placement group (`cairn.store.scripting.front`), replicated by its Raft log and kept in its
metadata and snapshots, as ACL users are; the placement leader pushes the table to every
node (`FUNCTIONS` frames), before it answers the node that asked, so a library loaded
through one node is callable there at once and on every other node a network hop later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cairn.placement.commands import Ack, Result, SetFunctions
from cairn.store.acl import describe
from cairn.store.scripting import ScriptFront
from cairn.store.scripting.functions import Change

if TYPE_CHECKING:
    from cairn.runtime.acl_commands import AclCommands
    from cairn.runtime.placement_wiring import NodePlacement


def wire_functions(scripts: ScriptFront, placement: NodePlacement, timeout: float) -> None:
    """Make `scripts`' FUNCTION changes proposals to the placement group, and adopt the
    tables the placement leader pushes (the one pushed before this call first)."""
    libraries = scripts.functions.libraries

    def propose(change: Change, applied: Callable[[bool | None], None]) -> bool:
        def answer(results: tuple[Result, ...] | None) -> None:
            if results is None or len(results) != 1 or not isinstance(results[0], Ack):
                applied(None)
            else:
                applied(results[0].ok)

        command = SetFunctions(change.base, change.items, 0)
        return placement.propose((command,), answer, timeout)

    scripts.functions.propose = propose
    placement.on_functions = libraries.adopt
    if placement.functions_latest is not None:
        libraries.adopt(*placement.functions_latest)


def script_rules(acl: AclCommands, username: str) -> bytes:
    """The canonical ACL rules a script of `username` runs under; empty when the user may
    run everything (nothing to check). A user unknown here was refused before."""
    table = acl.table
    user = table.user(username)
    if user is None or username in table.open_users:
        return b""
    return describe(user, table.catalog).encode("utf-8", "surrogateescape")
