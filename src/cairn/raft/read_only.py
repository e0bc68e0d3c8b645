"""Pending ReadIndex requests waiting for a quorum of heartbeat acknowledgements.

Raft thesis §6.4: the leader records its commit index, confirms it is still leader by a
heartbeat round, and only then lets the read be served once that index is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.raft.types import Message, NodeId


@dataclass(slots=True)
class ReadIndexStatus:
    """One pending request: the commit index when it arrived, and who has acknowledged."""

    request: Message
    index: int
    acks: dict[NodeId, bool] = field(default_factory=dict)


class ReadOnly:
    """The queue of pending requests, keyed by their unique context, in arrival order."""

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, request: Message) -> None:
        """Queue a request (a duplicate context is ignored)."""
        ctx = request.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(request=request, index=index)
        self.queue.append(ctx)

    def recv_ack(self, node_id: NodeId, ctx: bytes) -> dict[NodeId, bool] | None:
        """Record an acknowledgement; the acks so far, or None for an unknown context."""
        status = self.pending.get(ctx)
        if status is None:
            return None
        status.acks[node_id] = True
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release every request up to and including `ctx` (a later ack confirms earlier ones)."""
        if ctx not in self.pending:
            return []
        i = self.queue.index(ctx)
        released = [self.pending.pop(c) for c in self.queue[: i + 1]]
        del self.queue[: i + 1]
        return released

    def last_pending_context(self) -> bytes | None:
        """The newest pending request's context."""
        return self.queue[-1] if self.queue else None
