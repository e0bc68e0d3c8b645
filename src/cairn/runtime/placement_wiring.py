"""The placement group and agent of a real node: the pure pieces, wired to TCP and LMDB.

Theory of operation. `cairn.placement.service.PlacementMember` (a member of the placement
Raft group) and `cairn.placement.agent.PlacementAgent` (a node's side: heartbeats out,
steps in) are pure; `cairn.sim.region_pd` runs them in simulation. `NodePlacement` runs
them in a `cairn server`:

* **Members.** The placement group is the first `placement_members` founding nodes of
  `[peers]` (by id). A member's Raft replica is the placement region's, hosted in a
  `RegionHost` of its own (`cairn.placement.group_host`) over its own store in
  `<data_dir>/placement`, on the node's loop clock and peer links: the same envelopes,
  snapshot stream and drain as every region (`cairn.runtime.placement_host`, which also
  migrates a member's directory of the older, standalone layout).
* **Messages.** Requests and replies travel as `PLACEMENT` frames over the same peer
  links; a member's own agent is answered through the loop, not the network.
* **Address book.** Nodes that joined after the founding are dialled by address: the
  placement leader pushes the nodes it knows (`PEERS` frames) to every node it answers,
  when that book changed since the last push there, and a node learning a new address
  floods it to its links. A learned address never replaces a configured one (the chaos
  runner routes peers through proxies).
* **Join.** A node configured with `join` (and no founding) opens a short connection to
  that address and announces itself in a `PEERS` frame asking for a reply; the reply
  names every node the other knows and the placement members. The announced address
  is flooded to every node, which dials it (the smaller id dials), and the agent, started
  once the members are known, registers the node: the balance schedulers give it load.
* **Layout.** A node serves only the regions it hosts; for the others it needs their
  ranges and leaders to forward or to answer MOVED. The serving leader pushes its region
  map (`REGIONS` frames) to every node once per heartbeat round when it changed, and in
  full every `LAYOUT_REFRESH` seconds; the node keeps it beside its own regions.
* **Splits and merges.** The agent reports each led region's size, keys and write rate
  and cuts it where `StoreRegionInspector` says; the thresholds are the `[regions]`
  table of the config (`placement_config`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.meta.region import Region
from cairn.placement.agent import AgentSettings, NodeIdentity, PlacementAgent
from cairn.placement.codec import DecodeError
from cairn.placement.commands import AddNode, Command, Result
from cairn.placement.config import PlacementConfig
from cairn.placement.model import NodeAdmin
from cairn.placement.service import (
    PlacementMember,
    PlacementReply,
    PlacementRequest,
    ServiceSettings,
    decode_message,
    encode_message,
)
from cairn.placement.tso import TsoReply, TsoRequest
from cairn.placement.tso_client import OnError, OnTimestamp
from cairn.raft.config import Config
from cairn.raft.types import NONE, NodeId
from cairn.runtime.admin_peer import AdminPeer
from cairn.runtime.config import NodeConfig
from cairn.runtime.envelope_codec import TcpHostTransport
from cairn.runtime.frame_checks import check_acl_users, check_functions, check_peers
from cairn.runtime.frames import FrameError, FrameKind, encode_frame
from cairn.runtime.placement_host import MemberHost
from cairn.runtime.real_env import LoopClock
from cairn.runtime.region_inspector import StoreRegionInspector
from cairn.runtime.region_layout import PEER_ID_STRIDE
from cairn.runtime.transport import TcpTransport
from cairn.runtime.tso_wiring import NodeTso, skewed_wall_ms, tso_settings
from cairn.shard.host import RegionHost
from cairn.shard.region_machine import decode_region, encode_region
from cairn.shard.replica import ReplicaConfig
from cairn.store.machine import StoreMachine

log = logging.getLogger("cairn.placement")

PLACEMENT_TICK_MS = 50
"""The placement replica's tick (at least the regions' `raft.tick_ms`)."""
PLACEMENT_SNAPSHOT_THRESHOLD = 2000
"""Entries of the placement log between two compactions (each batch is one entry)."""
LAYOUT_REFRESH = 30.0
"""Seconds between two full pushes of the region map (a push is sent on change too)."""
JOIN_RETRY = 0.5
JOIN_REPLY_TIMEOUT = 2.0
PROPOSAL_RETRY = 0.05
"""Seconds before a proposal a member refused (not the leader) is sent again."""
_FIRST_PROPOSAL_ID = 1 << 48
"""Request ids of `NodePlacement.propose` (the agent's heartbeats count from 1)."""

AclUsersHandler = Callable[[int, list[tuple[str, str]]], None]
FunctionsHandler = Callable[[int, list[tuple[str, bytes]]], None]
"""(version, [(name, rules), ...]): the cluster's ACL users, as the placement leader has them."""


def placement_members(config: NodeConfig) -> tuple[NodeId, ...]:
    """The founding nodes that host the placement group (none known to a joining node)."""
    if config.join is not None:
        return ()
    return tuple(sorted(config.peers))[: config.placement_members]


def first_id(config: NodeConfig) -> int:
    """The first id the placement driver allocates: above every founding region and peer."""
    return (config.initial_regions + 1) * PEER_ID_STRIDE


def placement_config(config: NodeConfig) -> PlacementConfig:
    """The driver's knobs for this cluster: `down_after_s` and the `[regions]` table."""
    down = int(config.down_after_s * 1000)
    g = config.regions
    return PlacementConfig(
        down_after_ms=down,
        disconnected_after_ms=min(10_000, down),
        split_size_bytes=g.split_size_bytes,
        split_write_bytes_per_s=g.split_write_bytes_per_s,
        merge_size_bytes=g.merge_size_bytes,
        merge_keys=g.merge_keys,
        split_merge_interval_ms=g.split_merge_interval_s * 1000,
    )


def agent_settings(config: NodeConfig) -> AgentSettings:
    """The agent's timing, from the heartbeat interval."""
    beat = config.placement_heartbeat_ms / 1000
    return AgentSettings(
        heartbeat_interval=beat, request_timeout=max(0.5, 2 * beat), step_retry=max(0.3, 2 * beat)
    )


def service_settings(config: NodeConfig) -> ServiceSettings:
    """The leader loop's timing: a reconcile pass every half heartbeat."""
    return ServiceSettings(tick_interval=config.placement_heartbeat_ms / 2000, batch_delay=0.01)


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


@dataclass(frozen=True, slots=True)
class RemoteRegion:
    """A region as the placement leader last described it, and its leader's node."""

    region: Region
    leader: NodeId | None


BookEntry = tuple[NodeId, str, int]


class NodePlacement:
    """The placement member (on member nodes) and the agent of one real node."""

    def __init__(
        self,
        config: NodeConfig,
        host: RegionHost,
        transport: TcpTransport,
        clock: LoopClock,
        machines: Mapping[int, StoreMachine],
        on_layout: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.host = host
        self.transport = transport
        self.clock = clock
        self.machines = machines
        self.on_layout = on_layout
        self.members: tuple[NodeId, ...] = placement_members(config)
        self.member: PlacementMember | None = None
        self.agent: PlacementAgent | None = None
        self.remote: dict[int, RemoteRegion] = {}
        """The placement leader's region map, as last pushed here."""
        self.stopped = False
        self._member_host: MemberHost | None = None
        self._pushed_books: dict[NodeId, tuple[BookEntry, ...]] = {}
        self._pushed_layout: tuple[object, ...] = ()
        self._layout: tuple[Any, ...] = ()
        self._layout_changes = -1
        self._adopted: list[Any] = []
        self._pushed_at = -1e18
        self._tasks: list[asyncio.Task[None]] = []
        self._layout_timer: asyncio.TimerHandle | None = None
        self.on_acl_users: AclUsersHandler = self._remember_acl
        """Told the cluster's ACL users when they change (see `_push_acl`)."""
        self.acl_latest: tuple[int, list[tuple[str, str]]] | None = None
        """The users pushed before the node set `on_acl_users` (it adopts them then)."""
        self._acl_pushed: dict[NodeId, tuple[int, int]] = {}
        self._acl_local = 0
        self.on_functions: FunctionsHandler = self._remember_functions
        """Told the cluster's FUNCTION libraries when they change (see `_push_functions`)."""
        self.functions_latest: tuple[int, list[tuple[str, bytes]]] | None = None
        self._functions_pushed: dict[NodeId, tuple[int, int]] = {}
        self._functions_local = 0
        self._proposals: dict[int, _Proposal] = {}
        self._next_proposal = _FIRST_PROPOSAL_ID
        self.tso = NodeTso(self.node_id, clock, transport, lambda: self.members, self._member)
        """This node's client of the placement group's timestamp oracle (`timestamp`)."""
        transport.handlers[FrameKind.ACL_USERS] = self._on_acl_frame
        transport.handlers[FrameKind.FUNCTIONS] = self._on_functions_frame
        transport.handlers[FrameKind.PLACEMENT] = self._on_placement_frame
        transport.handlers[FrameKind.PEERS] = self._on_peers_frame
        transport.handlers[FrameKind.REGIONS] = self._on_regions_frame
        self.admin = AdminPeer(transport.send_frame)
        """Admin API reads asked of and by other nodes (`cairn.runtime.admin_peer`)."""
        transport.handlers[FrameKind.ADMIN] = self.admin.on_request
        transport.handlers[FrameKind.ADMIN_REPLY] = self.admin.on_reply

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the member (if this node is one) and the agent, or join first."""
        if self.node_id in self.members:
            self._start_member()
        if self.members:
            self._start_agent()
        if self.config.join is not None:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self._join(self.config.join)))
        self._schedule_layout_push()

    def _start_member(self) -> None:
        cfg = self.config
        links = self.host.transport
        if not isinstance(links, TcpHostTransport):
            raise TypeError("a placement member needs the node's TCP envelope transport")
        self._member_host = MemberHost(
            Path(cfg.data_dir),
            cfg.node_id,
            cfg.cluster_id,
            self.members,
            self.clock,
            links,
            self._replica_config(),
        )
        self.member = PlacementMember(
            self._member_host.host_for,
            self.members,
            self._send_reply,
            config=placement_config(cfg),
            first_id=first_id(cfg),
            settings=service_settings(cfg),
            wall_ms=skewed_wall_ms(self.clock),
            tso=tso_settings(),
        )
        log.info("placement member of group %s", list(self.members))

    def _replica_config(self) -> ReplicaConfig:
        """The regions' election and heartbeat times, on a coarser tick: the placement
        group never quiesces, and its timer is most of an idle node's wake-ups."""
        r = self.config.raft
        tick_ms = max(r.tick_ms, PLACEMENT_TICK_MS)
        election = max(4, round(r.election_ticks * r.tick_ms / tick_ms))
        heartbeat = min(election - 1, max(1, round(r.heartbeat_ticks * r.tick_ms / tick_ms)))
        raft = Config(
            id=self.node_id,
            election_tick=election,
            heartbeat_tick=heartbeat,
            check_quorum=True,
            pre_vote=True,
        )
        return ReplicaConfig(
            raft=raft,
            tick_interval=tick_ms / 1000,
            snapshot_threshold=PLACEMENT_SNAPSHOT_THRESHOLD,
        )

    def _start_agent(self) -> None:
        if self.agent is not None or self.stopped:
            return
        cfg = self.config
        identity = NodeIdentity(
            _address(cfg.peer_addr),
            _address(cfg.advertised_client_addr),
            tuple(sorted(cfg.labels.items())),
        )
        self.agent = PlacementAgent(
            self.host,
            self.clock,
            self._send_request,
            self.members,
            StoreRegionInspector(self.machines, self.clock.now),
            identity=identity,
            settings=agent_settings(cfg),
            log=log.info,
        )
        self.agent.start()

    def stop(self) -> None:
        """Stop the agent and the member, close the member's store."""
        self.stopped = True
        self.admin.close()
        self.tso.stop()
        for task in self._tasks:
            task.cancel()
        if self._layout_timer is not None:
            self._layout_timer.cancel()
        if self.agent is not None:
            self.agent.stop()
        if self.member is not None:
            self.member.stop()
        if self._member_host is not None:
            self._member_host.close()

    # -- requests and replies -------------------------------------------------------------

    def _send_request(self, to: NodeId, request: PlacementRequest) -> None:
        member = self.member
        if to == self.node_id and member is not None:
            asyncio.get_running_loop().call_soon(self._local_request, member, request)
            return
        self.transport.send_frame(to, [FrameKind.PLACEMENT, encode_message(request)])

    def _local_request(self, member: PlacementMember, request: PlacementRequest) -> None:
        if not self.stopped:
            self._serve(member, request)

    def _serve(self, member: PlacementMember, request: PlacementRequest) -> None:
        self._register_founders(member)
        member.on_request(request)

    def _register_founders(self, member: PlacementMember) -> None:
        """Register every founding node the metadata does not know, ahead of any request
        a serving leader answers: a region's first report names peers on every founding
        node, and a peer on a node the driver has never heard of is removed at once. A
        founder that never starts is then judged like any silent node (down, repaired)."""
        known = member.driver.metadata.nodes
        missing = [n for n in sorted(self.config.peers) if n not in known]
        if not missing or not member.serving():
            return
        adds = tuple(AddNode(n, _address(self.config.peers[n]), "", (), 0) for n in missing)
        member.submit(adds, lambda results: None)

    def _send_reply(self, to: NodeId, reply: PlacementReply | TsoReply) -> None:
        if isinstance(reply, TsoReply):
            self.tso.send_reply(to, reply)
            return
        self._push_acl()  # before the reply: a node that changed a user sees it at once
        if to == self.node_id:
            asyncio.get_running_loop().call_soon(self._local_reply, reply)
            return
        self.transport.send_frame(to, [FrameKind.PLACEMENT, encode_message(reply)])
        if reply.served:
            self._push_book(to)

    def _local_reply(self, reply: PlacementReply) -> None:
        if not self.stopped and self.agent is not None:
            self.agent.on_reply(reply)

    def _on_placement_frame(self, peer: NodeId, frame: list[Any]) -> None:
        if len(frame) != 2 or not isinstance(frame[1], bytes):
            raise FrameError("a PLACEMENT frame is [kind, message]")
        try:
            message = decode_message(frame[1])
        except DecodeError as exc:
            raise FrameError(f"undecodable placement message: {exc}") from exc
        if self.stopped:
            return
        if isinstance(message, TsoRequest | TsoReply):
            self.tso.on_message(peer, message)
        elif isinstance(message, PlacementReply) and message.request_id in self._proposals:
            self._on_proposal_reply(message)
        elif isinstance(message, PlacementRequest):
            if message.node_id != peer:
                raise FrameError(f"node {peer} sent a placement request in another's name")
            if self.member is not None:
                self._serve(self.member, message)
        elif self.agent is not None:
            self.agent.on_reply(message)

    # -- timestamps (the placement group's TSO) -------------------------------------------

    def timestamp(
        self, on_ts: OnTimestamp, on_error: OnError, timeout: float | None = None
    ) -> None:
        """One cluster-wide timestamp (`cairn.placement.tso`), above every one any node got
        before this call: `on_ts(ts)`, or `on_error(reason)` after `timeout` seconds
        (default: the request timeout); called later from the loop, never from here."""
        if timeout is None:
            timeout = self.config.limits.request_timeout_ms / 1000
        self.tso.client.timestamp(on_ts, on_error, timeout)

    # -- serving the admin API ------------------------------------------------------------

    def _member(self) -> PlacementMember | None:
        return self.member

    def serving_member(self) -> PlacementMember | None:
        """This node's member, if it leads the group and serves."""
        member = self.member
        return member if member is not None and member.serving() else None

    def leader(self) -> NodeId | None:
        """The member this node believes leads the placement group, if any."""
        if self.member is not None and self.member.leader:
            return self.member.leader
        if self.agent is not None and self.agent.registered:
            return self.agent.target
        return None

    async def submit(self, commands: Sequence[Command]) -> tuple[Result, ...] | None:
        """Apply `commands` through the group from this (serving) member; None when it
        cannot serve them (not the leader any more)."""
        member = self.member
        if member is None:
            return None
        future: asyncio.Future[tuple[Result, ...] | None] = (
            asyncio.get_running_loop().create_future()
        )

        def answer(results: tuple[Result, ...] | None) -> None:
            if not future.done():
                future.set_result(results)

        member.submit(commands, answer)
        return await future

    # -- the address book -----------------------------------------------------------------

    def book(self) -> tuple[BookEntry, ...]:
        """Every node whose peer address this node knows, itself included."""
        host, port = self.config.peer_addr
        entries = {self.node_id: (host, port)}
        for node, (h, p) in self.transport.peers.items():
            entries.setdefault(node, (h, p))
        return tuple((n, h, p) for n, (h, p) in sorted(entries.items()))

    def _metadata_book(self) -> tuple[BookEntry, ...]:
        """The nodes the placement metadata knows (not removed), as registered."""
        member = self.member
        if member is None:
            return ()
        out = []
        for node in sorted(member.driver.metadata.nodes.values(), key=lambda n: n.id):
            if node.admin is NodeAdmin.REMOVED or ":" not in node.peer_address:
                continue
            host, _, port = node.peer_address.rpartition(":")
            with contextlib.suppress(ValueError):
                out.append((node.id, host, int(port)))
        return tuple(out)

    def _push_book(self, to: NodeId) -> None:
        book = self._metadata_book()
        if book and self._pushed_books.get(to) != book:
            self._pushed_books[to] = book
            self._send_peers(to, book, want_reply=False)

    def _send_peers(self, to: NodeId, book: Sequence[BookEntry], *, want_reply: bool) -> None:
        entries = [list(e) for e in book]
        self.transport.send_frame(to, [FrameKind.PEERS, entries, want_reply, list(self.members)])

    def _on_peers_frame(self, peer: NodeId, frame: list[Any]) -> None:
        try:
            _, entries, want_reply, members = frame
            book = [(int(n), str(h), int(p)) for n, h, p in entries]
            known = tuple(int(m) for m in members)
        except (TypeError, ValueError) as exc:
            raise FrameError(f"malformed PEERS frame: {exc}") from exc
        if self.stopped:
            return
        learned = self.learn(book)
        if known and not self.members:
            self.members = tuple(sorted(known))
            log.info("joined: the placement group is %s", list(self.members))
            self._start_agent()
        if want_reply:
            self._send_peers(peer, self.book(), want_reply=False)
        if learned:
            for node in sorted(self.transport.peers):
                if node != peer and self.transport.connected(node):
                    self._send_peers(node, learned, want_reply=False)

    def learn(self, book: Sequence[BookEntry]) -> list[BookEntry]:
        """Add the nodes of `book` this node did not know (a known address is kept); the
        entries that were new."""
        new = []
        for node, host, port in book:
            if node == self.node_id or node in self.transport.peers or node <= 0:
                continue
            self.transport.add_peer(node, (host, port))
            new.append((node, host, port))
            log.info("learned node %d at %s:%d", node, host, port)
        return new

    async def _join(self, address: tuple[str, int]) -> None:
        """Announce this node to the node at `address` until it answered once."""
        while not self.stopped:
            try:
                await self._join_once(address)
                return
            except (OSError, TimeoutError, FrameError) as exc:
                log.info("joining through %s:%d: %s; retrying", *address, exc)
            await asyncio.sleep(JOIN_RETRY)

    async def _join_once(self, address: tuple[str, int]) -> None:
        cfg = self.config
        reader, writer = await self.transport.open_stream(address, JOIN_RETRY * 4)
        try:
            peer, decoder = await self.transport.dial_handshake(reader, writer)
            host, port = cfg.peer_addr
            me = [[cfg.node_id, host, port]]
            writer.write(encode_frame([FrameKind.PEERS, me, True, []]))
            await writer.drain()
            async with asyncio.timeout(JOIN_REPLY_TIMEOUT):
                while True:
                    for frame in decoder.frames():
                        if frame[0] == FrameKind.PEERS:
                            check_peers(frame)
                            self._on_peers_frame(peer, frame)
                            if self.members:
                                return
                    data = await reader.read(1 << 16)
                    if not data:
                        raise FrameError("the join node closed the connection")
                    decoder.feed(data)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- the region map -------------------------------------------------------------------

    def _schedule_layout_push(self) -> None:
        if self.stopped:
            return
        delay = self.config.placement_heartbeat_ms / 1000
        loop = asyncio.get_running_loop()
        self._layout_timer = loop.call_later(delay, self._layout_round)

    def _layout_round(self) -> None:
        try:
            self._push_acl()
            self._push_layout()
        finally:
            self._schedule_layout_push()

    def _push_layout(self) -> None:
        member = self.serving_member()
        if member is None:
            return
        metadata = member.driver.metadata
        if metadata.changes != self._layout_changes:  # else the map is what was built
            self._layout_changes = metadata.changes
            self._layout = tuple(
                (encode_region(info.report.region), info.report.leader_node_id)
                for _, info in sorted(metadata.region_infos.items())
            )
        layout = self._layout
        now = self.clock.now()
        if layout == self._pushed_layout and now - self._pushed_at < LAYOUT_REFRESH:
            return
        self._pushed_layout, self._pushed_at = layout, now
        items: list[Any] = [list(item) for item in layout]
        for node in sorted(self.transport.peers):
            self.transport.send_frame(node, [FrameKind.REGIONS, items])
        self._adopt_layout(items)

    def _on_regions_frame(self, peer: NodeId, frame: list[Any]) -> None:
        if len(frame) != 2 or not isinstance(frame[1], list):
            raise FrameError("a REGIONS frame is [kind, [[region, leader], ...]]")
        if not self.stopped:
            self._adopt_layout(frame[1])

    def _adopt_layout(self, items: list[Any]) -> None:
        if items == self._adopted:
            return  # a refresh of the map this node has: nothing to decode
        try:
            remote = {}
            for fields, leader in items:
                region = decode_region(fields)
                remote[region.id] = RemoteRegion(region, None if leader is None else int(leader))
        except (TypeError, ValueError, AssertionError) as exc:
            raise FrameError(f"malformed region map: {exc}") from exc
        self._adopted = items
        if remote != self.remote:
            self.remote = remote
            self.on_layout()

    # -- proposals from any node (ACL users) ----------------------------------------------

    def propose(self, commands: Sequence[Command], answer: Answer, timeout: float) -> bool:
        """Apply `commands` through the placement group from any node: sent to the
        member believed to lead (again to the one a refusal names) until `timeout`
        seconds have passed. `answer` gets the results, or None (no leader in time, or
        no answer: then whether they applied is unknown). False: no group is known."""
        if not self.members or self.stopped:
            return False
        self._next_proposal += 1
        proposal = _Proposal(self._next_proposal, tuple(commands), answer)
        self._proposals[proposal.request_id] = proposal
        loop = asyncio.get_running_loop()
        proposal.timer = loop.call_later(timeout, self._proposal_timed_out, proposal.request_id)
        self._send_proposal(proposal, self.leader() or self.members[0])
        return True

    def _send_proposal(self, proposal: _Proposal, to: NodeId) -> None:
        if self.stopped or proposal.request_id not in self._proposals:
            return
        proposal.target = to
        member = self.member
        if to == self.node_id and member is not None:
            member.submit(proposal.commands, lambda r: self._local_answer(proposal, r))
            return
        request = PlacementRequest(self.node_id, proposal.request_id, proposal.commands)
        self.transport.send_frame(to, [FrameKind.PLACEMENT, encode_message(request)])

    def _local_answer(self, proposal: _Proposal, results: tuple[Result, ...] | None) -> None:
        if results is not None:
            self._push_acl()
            self._finish_proposal(proposal.request_id, results)
            return
        leader = self.member.leader if self.member is not None else NONE
        self._retry_proposal(proposal, leader)

    def _on_proposal_reply(self, reply: PlacementReply) -> None:
        proposal = self._proposals.get(reply.request_id)
        if proposal is None:
            return
        if reply.served:
            self._finish_proposal(reply.request_id, reply.results)
        else:
            self._retry_proposal(proposal, reply.leader)

    def _retry_proposal(self, proposal: _Proposal, leader: NodeId) -> None:
        if leader not in self.members or leader == proposal.target:
            i = self.members.index(proposal.target) if proposal.target in self.members else -1
            leader = self.members[(i + 1) % len(self.members)]
        loop = asyncio.get_running_loop()
        loop.call_later(PROPOSAL_RETRY, self._send_proposal, proposal, leader)

    def _proposal_timed_out(self, request_id: int) -> None:
        self._finish_proposal(request_id, None)

    def _finish_proposal(self, request_id: int, results: tuple[Result, ...] | None) -> None:
        proposal = self._proposals.pop(request_id, None)
        if proposal is None:
            return
        if proposal.timer is not None:
            proposal.timer.cancel()
        proposal.answer(results)

    # -- the ACL users ----------------------------------------------------------------------

    def _push_acl(self) -> None:
        """On the serving leader: adopt the metadata's ACL users here, and push them to
        every connected node that has not had this version over its current link."""
        self._push_functions()
        member = self.serving_member()
        if member is None:
            return
        metadata = member.driver.metadata
        version = metadata.acl_version
        if version == 0:
            return  # no ACL command ever: every node has only its configured default
        if self._acl_local != version:
            self._acl_local = version
            self.on_acl_users(version, sorted(metadata.acl_users.items()))
        links = self.transport.links_version
        frame: list[Any] | None = None
        for node in self.transport.peers:
            if self._acl_pushed.get(node) == (version, links) or not self.transport.connected(node):
                continue
            if frame is None:
                items = sorted(metadata.acl_users.items())
                frame = [FrameKind.ACL_USERS, version, [list(item) for item in items]]
            if self.transport.send_frame(node, frame):
                self._acl_pushed[node] = (version, links)

    def _push_functions(self) -> None:
        """As `_push_acl`, for the FUNCTION libraries (called with it)."""
        member = self.serving_member()
        if member is None or member.driver.metadata.function_version == 0:
            return
        metadata = member.driver.metadata
        version = metadata.function_version
        if self._functions_local != version:
            self._functions_local = version
            self.on_functions(version, list(metadata.functions))
        links = self.transport.links_version
        frame: list[Any] | None = None
        for node in self.transport.peers:
            pushed = self._functions_pushed.get(node) == (version, links)
            if pushed or not self.transport.connected(node):
                continue
            if frame is None:
                frame = [FrameKind.FUNCTIONS, version, [list(i) for i in metadata.functions]]
            if self.transport.send_frame(node, frame):
                self._functions_pushed[node] = (version, links)

    def _remember_functions(self, version: int, libraries: list[tuple[str, bytes]]) -> None:
        if self.functions_latest is None or version > self.functions_latest[0]:
            self.functions_latest = (version, libraries)

    def _on_functions_frame(self, peer: NodeId, frame: list[Any]) -> None:
        version, libraries = check_functions(frame)
        if not self.stopped:
            self.on_functions(version, libraries)

    def _remember_acl(self, version: int, users: list[tuple[str, str]]) -> None:
        if self.acl_latest is None or version > self.acl_latest[0]:
            self.acl_latest = (version, users)

    def _on_acl_frame(self, peer: NodeId, frame: list[Any]) -> None:
        version, users = check_acl_users(frame)
        if not self.stopped:
            self.on_acl_users(version, users)


Answer = Callable[[tuple[Result, ...] | None], None]


@dataclass(slots=True)
class _Proposal:
    """Commands `NodePlacement.propose` is getting applied."""

    request_id: int
    commands: tuple[Command, ...]
    answer: Answer
    target: NodeId = 0
    timer: asyncio.TimerHandle | None = None
