"""The timestamp oracle's traffic on a real node (`cairn.placement.tso`).

`NodeTso` owns the node's `TsoClient` and carries its requests to the placement member
believed to lead, and that member's replies back, in `PLACEMENT` frames over the peer
links; a request to this node's own member, and its reply, go through the event loop
instead of the network. `NodePlacement` routes the frames here and exposes `timestamp`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence

from cairn.placement.service import PlacementMember, encode_message
from cairn.placement.tso import TSO_BACKWARDS, TsoReply, TsoRequest, TsoSettings
from cairn.placement.tso_client import TsoClient
from cairn.raft.types import NodeId
from cairn.runtime.frames import FrameError, FrameKind
from cairn.runtime.plants import PLANT_ENV
from cairn.runtime.real_env import LoopClock
from cairn.runtime.transport import TcpTransport


class NodeTso:
    """A node's TSO client and the routing of TSO messages (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        clock: LoopClock,
        transport: TcpTransport,
        members: Callable[[], Sequence[NodeId]],
        member: Callable[[], PlacementMember | None],
    ) -> None:
        self.node_id = node_id
        self.transport = transport
        self.member = member
        self.client = TsoClient(node_id, clock, self.send_request, members)
        self.stopped = False

    def send_request(self, to: NodeId, request: TsoRequest) -> None:
        """Send the client's request to member `to` (this node's own through the loop)."""
        member = self.member()
        if to == self.node_id and member is not None:
            asyncio.get_running_loop().call_soon(self._local_request, member, request)
            return
        self.transport.send_frame(to, [FrameKind.PLACEMENT, encode_message(request)])

    def _local_request(self, member: PlacementMember, request: TsoRequest) -> None:
        if not self.stopped:
            member.on_tso_request(request)

    def send_reply(self, to: NodeId, reply: TsoReply) -> None:
        """Send this node's member's reply to node `to` (this node through the loop)."""
        if to == self.node_id:
            asyncio.get_running_loop().call_soon(self._local_reply, reply)
            return
        self.transport.send_frame(to, [FrameKind.PLACEMENT, encode_message(reply)])

    def _local_reply(self, reply: TsoReply) -> None:
        if not self.stopped:
            self.client.on_reply(reply)

    def on_message(self, peer: NodeId, message: TsoRequest | TsoReply) -> None:
        """A TSO message from node `peer` (a request must be in its own name)."""
        if self.stopped:
            return
        if isinstance(message, TsoReply):
            self.client.on_reply(message)
            return
        if message.node_id != peer:
            raise FrameError(f"node {peer} sent a TSO request in another's name")
        member = self.member()
        if member is not None:
            member.on_tso_request(message)

    def stop(self) -> None:
        """Stop: waiting callers get their error, nothing more is sent or served."""
        self.stopped = True
        self.client.stop()


def wall_ms() -> int:
    """The wall clock in milliseconds: the TSO's physical time on a real node."""
    return int(time.time() * 1000)


def skewed_wall_ms(clock: LoopClock) -> Callable[[], int]:
    """The wall clock in milliseconds as node `clock` sees it: the TSO's physical time on
    a real node. Unskewed (production, no failpoints) it is `wall_ms`; after the chaos
    runner's clock-skew fault (`CAIRN.CLOCKSKEW`) it is off by as much as `clock` has
    drifted since, so a skewed placement leader's timestamps are skewed too."""
    start = clock.now() - clock.loop.time()

    def now_ms() -> int:
        drift = clock.now() - clock.loop.time() - start
        return int((time.time() + drift) * 1000)

    return now_ms


def tso_settings() -> TsoSettings | None:
    """The TSO settings of a real node: the defaults, with the planted bug `tso-backwards`
    when `CAIRN_PLANT` names it (tests only)."""
    if os.environ.get(PLANT_ENV) == TSO_BACKWARDS:
        return TsoSettings(plants=frozenset({TSO_BACKWARDS}))
    return None
