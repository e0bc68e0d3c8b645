"""LASTSAVE, ROLE, WAIT and MONITOR: Redis' replication and persistence questions,
answered with what they mean for a Raft store (docs/commands.md, "Introspection").

- LASTSAVE: every write Cairn acknowledges is already in the fsynced Raft log and LMDB,
  so the whole acknowledged dataset is saved at every moment: the reply is the current
  Unix time (a client polling LASTSAVE to see a BGSAVE finish sees it at once).
- ROLE: `master`, the replication offset INFO shows (the node's: the sum of the commit
  indexes of the regions it hosts) and no replicas: every node serves reads and writes of
  every key (a follower forwards to the region's leader), so to a Redis client each node
  is a master;
  replication is Raft's, per region (INFO raft).
- WAIT numreplicas timeout: an acknowledged write is already on a quorum of its
  region's voters, so WAIT never blocks: it answers at once the number of replicas
  besides the leader that every acknowledged write is guaranteed to be on, the smallest
  quorum minus one over the regions (1 with three voters, 2 with five).
- MONITOR: `cairn.runtime.monitor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.numbers import parse_ll

if TYPE_CHECKING:
    from cairn.runtime.client_commands import ServerContext
    from cairn.runtime.server import ClientConnection

NOT_INTEGER = ErrorReply("ERR value is not an integer or out of range")


def lastsave(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """LASTSAVE: now (everything acknowledged is on disk)."""
    return Integer(int(ctx.wall_time()))


def role(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """ROLE: ["master", replication offset, []]."""
    offset, _ = ctx.replication()
    return Array((Bulk(b"master"), Integer(offset), Array(())))


def wait(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """WAIT numreplicas timeout: the replicas every acknowledged write is on, at once."""
    if parse_ll(args[0]) is None:
        return NOT_INTEGER
    timeout = parse_ll(args[1])
    if timeout is None:
        return ErrorReply("ERR timeout is not an integer or out of range")
    if timeout < 0:
        return ErrorReply("ERR timeout is negative")
    _, replicas = ctx.replication()
    return Integer(replicas)


def monitor(ctx: ServerContext, conn: ClientConnection, args: Sequence[bytes]) -> Reply:
    """MONITOR: OK, then every command this node receives (`cairn.runtime.monitor`)."""
    ctx.monitors.add(conn)
    return OK
