"""The node's glue for scripts: FUNCTION libraries through the placement group, the
caller's ACL rules handed to a script, and the node's I/O for a region leader's EVAL/FCALL
run for their effects (`NodeEffectsIo`, for `cairn.shard.script_effects.ScriptEffects`).

FUNCTION LOAD/DELETE/FLUSH/RESTORE on any node become a `SetFunctions` command of the
placement group (`cairn.store.scripting.front`), replicated by its Raft log and kept in its
metadata and snapshots, as ACL users are; the placement leader pushes the table to every
node (`FUNCTIONS` frames), before it answers the node that asked, so a library loaded
through one node is callable there at once and on every other node a network hop later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from cairn.placement.commands import Ack, Result, SetFunctions
from cairn.resp.reply import ErrorReply, Reply
from cairn.shard.replica import Callback, Completion, Outcome
from cairn.store.acl import describe
from cairn.store.commands.spec import CommandSpec
from cairn.store.scripting import ScriptFront
from cairn.store.scripting.functions import Change

if TYPE_CHECKING:
    from cairn.meta.region import Region
    from cairn.runtime.acl_commands import AclCommands
    from cairn.runtime.placement_wiring import NodePlacement
    from cairn.shard.host import RegionHost


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


class _Request(Protocol):
    """What the wiring needs of the node's request record (`node._Request`)."""

    argv: list[bytes]
    spec: CommandSpec
    finished: bool

    def finish(self, reply: Reply) -> None: ...


UNCERTAIN = ErrorReply(
    "UNCERTAIN the write may or may not have been applied (leadership changed or it timed out)"
)
"""As the node answers a write whose outcome it cannot know (`node.UNCERTAIN`)."""


class NodeEffectsIo:
    """One EVAL/FCALL request's `EffectsIo` on a real node: reads and proposals through
    the region host under the epoch it was routed with; a rejected one is routed again
    (`retry_later`), an unknown outcome answers UNCERTAIN, `replay` is the node's own
    write path for the script itself."""

    def __init__(
        self,
        host: RegionHost,
        region: Region,
        request: _Request,
        replay: Callable[[], None],
        retry_later: Callable[[], None],
    ) -> None:
        self._host = host
        self._region = region
        self._request = request
        self._replay = replay
        self._retry_later = retry_later

    def read(self, on_done: Callback) -> None:
        """A linearizable read point of the region for the script's first key."""
        keys = self._request.spec.keys(self._request.argv)
        self._host.read(self._region.id, self._region.epoch, keys[0] if keys else b"", on_done)

    def propose(self, command: bytes, on_done: Callback) -> None:
        """Propose the effects entry under the routed epoch."""
        self._host.propose(self._region.id, self._region.epoch, command, on_done)

    def replay(self) -> None:
        """Propose the script itself."""
        self._replay()

    def done(self, completion: Completion) -> None:
        """Answer the client (or route again when the region was not ours after all)."""
        if completion.outcome is Outcome.OK:
            self._request.finish(cast(Reply, completion.value))
        elif completion.outcome is Outcome.REJECTED:
            self._retry_later()
        else:
            self._request.finish(UNCERTAIN)

    def cancelled(self) -> bool:
        """Whether the request was answered already (its deadline passed)."""
        return self._request.finished
