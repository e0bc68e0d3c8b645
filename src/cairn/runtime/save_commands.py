"""SAVE and BGSAVE: answered as Redis 7.0 answers them, and nothing more to do.

Redis writes its dataset to an RDB file on SAVE and BGSAVE. In Cairn every acknowledged
write is already fsynced on a quorum of replicas before its reply, so there is nothing to
flush: SAVE answers OK and BGSAVE "Background saving started" at once, with Redis'
argument checks, so scripts and clients that call them before a shutdown or a copy keep
working. A copy of the data is `cairn ctl backup DIR` (a consistent cut of the whole
cluster); LASTSAVE is answered elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.resp.reply import OK, ErrorReply, Reply, SimpleString

if TYPE_CHECKING:
    from cairn.runtime.client_commands import ServerContext
    from cairn.runtime.server import ClientConnection

STARTED = SimpleString("Background saving started")
SYNTAX_ERROR = ErrorReply("ERR syntax error")


def save(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """SAVE: every acknowledged write is durable already."""
    return OK


def bgsave(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """BGSAVE [SCHEDULE]: as SAVE, answered as a background save that started."""
    if len(args) > 1 or (args and args[0].lower() != b"schedule"):
        return SYNTAX_ERROR
    return STARTED
