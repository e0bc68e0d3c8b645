"""The placement group: the cluster metadata replicated by Raft, and its leader's loop.

Theory of operation. The placement driver's state (`ClusterMetadata`) lives in its own Raft
group of three or five members on the first nodes. Each member is a `PlacementMember`: the
replica of a region hosted in a `RegionHost` of its own over a `PlacementMachine`
(`cairn.placement.group_host`), driven like any region's replica, so the same code runs on
the real node and in the simulator. Every entry of the group's log
is a batch of placement commands (`encode_batch`); every member applies it in log order,
so every member holds the same metadata, operators in flight included, and a new leader
continues where the old one stopped.

Only the leader serves. Nodes send it `PlacementRequest`s (their node heartbeat, their
leaders' region heartbeats, registration, admin commands); the leader queues them for
`batch_delay`, stamps every command with the placement time, proposes the whole queue as
one entry, and answers each request with its own commands' results once that entry has
been applied (`PlacementReply`): a region leader is told its next step only by a state in
which the operator that holds the step exists on a quorum. A member that does not lead, or
leads but has not yet applied every entry of earlier terms, answers at once with
`served=False` and the leader it believes in, and the node tries there. Every
`tick_interval` the leader proposes a `Tick` (liveness, operator timeouts, the reconcile
loops), one at a time.

Placement time. Commands carry `now_ms`, and the metadata's clock is the largest one
applied; a node silent for `down_after_ms` of that clock is down. The leader stamps
commands itself, never trusting a node's clock: from the moment it starts serving, the
placement time is the metadata's clock at that moment plus the time its own clock has
run since. Monotonic clocks of different processes share no origin, so this is the only
reading that survives a change of leader: time stands still between the last entry of
one leader and the first of the next, so a failover of the placement group never makes
silent nodes look dead — they are judged only on time during which a leader listened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import msgpack

from cairn.env import Clock, TimerHandle
from cairn.meta.region import PLACEMENT_REGION_ID
from cairn.placement.codec import Codec, DecodeError
from cairn.placement.commands import CODEC, CODEC_TABLE, Ack, AllocIds, Command, Result, Tick
from cairn.placement.config import PlacementConfig
from cairn.placement.driver import PlacementDriver
from cairn.placement.group_host import HostFactory, KeylessMachine, placement_region
from cairn.placement.model import PlacementRules
from cairn.placement.tso import SaveTsoBound, TimestampOracle, TsoReply, TsoRequest, TsoSettings
from cairn.raft.types import NONE, NodeId
from cairn.shard.replica import Callback, Completion, Outcome, Replica


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """Commands from node `node_id` for the placement leader, answered together.

    `now_ms` of every command is ignored: the leader stamps placement time."""

    node_id: int
    request_id: int
    commands: tuple[Command, ...]

    def describe(self) -> str:
        """A stable one-line rendering for traces."""
        kinds = ",".join(type(c).__name__ for c in self.commands)
        return f"pd-request n{self.node_id} #{self.request_id} [{kinds}]"


@dataclass(frozen=True, slots=True)
class PlacementReply:
    """Member `member`'s answer to request `request_id` of node `node_id`.

    With `served`, `results[i]` is the result of the request's command i, applied. Without,
    nothing was applied on this request's behalf that the node can count on, and `leader`
    names the member this one believes leads (0: none known).
    """

    member: int
    node_id: int
    request_id: int
    served: bool
    results: tuple[Result, ...] = ()
    leader: int = NONE

    def describe(self) -> str:
        """A stable one-line rendering for traces."""
        what = f"{len(self.results)} results" if self.served else f"refused, leader {self.leader}"
        return f"pd-reply n{self.member}->n{self.node_id} #{self.request_id} {what}"


PlacementMessage = PlacementRequest | PlacementReply | TsoRequest | TsoReply
"""What travels between nodes' agents and the placement group's members (and the TSO's
requests and replies, `cairn.placement.tso`)."""

MESSAGE_CODEC = Codec(
    {**CODEC_TABLE, 80: PlacementRequest, 81: PlacementReply, 82: TsoRequest, 83: TsoReply},
    checked=True,
)
"""The wire form of placement messages (the commands' codes, plus these four)."""

LogCommand = Command | SaveTsoBound
"""What an entry of the placement log holds: metadata commands and the TSO's bounds."""


def encode_message(message: PlacementMessage) -> bytes:
    """`message` as bytes for a transport between processes."""
    return MESSAGE_CODEC.encode(message)


def decode_message(data: bytes) -> PlacementMessage:
    """The message `encode_message` wrote; `DecodeError` for anything else."""
    value = MESSAGE_CODEC.decode(data)
    if not isinstance(value, PlacementRequest | PlacementReply | TsoRequest | TsoReply):
        raise DecodeError(f"not a placement message: {type(value).__name__}")
    return value


def encode_batch(commands: Sequence[LogCommand]) -> bytes:
    """The data of one entry of the placement group's log."""
    return CODEC.encode(tuple(commands))


def decode_batch(data: bytes) -> tuple[LogCommand, ...]:
    """The commands `encode_batch` wrote; `DecodeError` for anything else."""
    value = CODEC.decode(data)
    if not isinstance(value, tuple):
        raise DecodeError("a placement entry is not a list of commands")
    for command in value:
        if not isinstance(command, LogCommand):
            raise DecodeError(f"not a placement command: {type(command).__name__}")
    return value


class PlacementMachine:
    """`ClusterMetadata` as a Raft state machine: each entry a batch of commands, each
    result the tuple of their results. A malformed entry applies nothing (on every member).

    Invariant: `applied_index` is the last entry applied or the snapshot restored;
    `tso_bound_ms` is the largest `SaveTsoBound` applied (`cairn.placement.tso`)."""

    def __init__(self, driver: PlacementDriver) -> None:
        self.driver = driver
        self.applied_index = 0
        self.tso_bound_ms = 0

    def apply(self, index: int, data: bytes) -> tuple[Result, ...]:
        """Apply one committed batch."""
        try:
            commands = decode_batch(data)
        except DecodeError:
            commands = ()
        results = tuple(self._apply_one(c) for c in commands)
        self.applied_index = index
        return results

    def _apply_one(self, command: LogCommand) -> Result:
        if isinstance(command, SaveTsoBound):
            self.tso_bound_ms = max(self.tso_bound_ms, command.bound_ms)
            return Ack(True)
        return self.driver.apply(command)

    def snapshot(self) -> bytes:
        """The applied index, the metadata's snapshot and the TSO's saved bound."""
        image = [self.applied_index, self.driver.snapshot(), self.tso_bound_ms]
        return bytes(msgpack.packb(image))

    def restore(self, data: bytes) -> None:
        """Adopt a `snapshot()` image (one written before the TSO has no bound: 0)."""
        index, image, *rest = msgpack.unpackb(data)
        self.driver.restore(bytes(image))
        self.applied_index = int(index)
        self.tso_bound_ms = int(rest[0]) if rest else 0


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The leader loop's timing, in seconds of the member's clock."""

    tick_interval: float = 0.1
    """Between two `Tick`s (the reconcile loops)."""
    batch_delay: float = 0.005
    """How long a request waits for others to share its entry."""


@dataclass(slots=True)
class ServiceStats:
    """What a member did while it led (read by tests and metrics)."""

    proposals: int = 0
    commands: int = 0
    ticks: int = 0
    served: int = 0
    refused: int = 0


ReplySender = Callable[[NodeId, PlacementReply | TsoReply], None]
"""Sends a reply to a node (best effort, like every transport)."""

Answer = Callable[[tuple[Result, ...] | None], None]
"""Receives the results of submitted commands, or None when they were not served."""


@dataclass(slots=True)
class _Anchor:
    """Placement time at the start of a leader's service: `ms` when its clock read `at`."""

    term: int
    ms: int
    at: float


class PlacementMember:
    """One member of the placement group (see the module docstring)."""

    def __init__(
        self,
        host_for: HostFactory,
        members: Sequence[NodeId],
        send_reply: ReplySender,
        *,
        config: PlacementConfig | None = None,
        rules: PlacementRules | None = None,
        first_id: int = 1,
        settings: ServiceSettings | None = None,
        wall_ms: Callable[[], int] | None = None,
        tso: TsoSettings | None = None,
    ) -> None:
        """`host_for` builds this member's placement host (`cairn.placement.group_host`)
        over the member's machine; the placement region is founded in it when its store
        holds none. `wall_ms`: the wall clock in milliseconds, the TSO's physical time
        (default: the host's clock); `tso`: the timestamp oracle's settings."""
        self.driver = PlacementDriver(config, rules)
        # Ids below `first_id` belong to the founding layout (every member agrees).
        self.driver.metadata.next_id = max(self.driver.metadata.next_id, first_id)
        self.machine = PlacementMachine(self.driver)
        self.host = host_for(KeylessMachine(self.machine))
        self.replica = self._found(members)
        self.node_id = self.host.node_id
        self.clock: Clock = self.host.clock
        self.settings = settings or ServiceSettings()
        self.send_reply = send_reply
        self.stats = ServiceStats()
        self._queue: list[tuple[tuple[Command, ...], Answer]] = []
        self._flush_timer: TimerHandle | None = None
        self._anchor: _Anchor | None = None
        self._tick_in_flight = False
        self._tick_timer = self.clock.call_later(self.settings.tick_interval, self._on_tick)
        clock = self.clock
        wall = wall_ms if wall_ms is not None else lambda: int(clock.now() * 1000)
        self.tso = TimestampOracle(_OracleHost(self), clock, wall, tso)

    def _found(self, members: Sequence[NodeId]) -> Replica:
        """The replica of the placement region on this member's host, founded (with
        `members` as its voters) if the host's store holds none yet."""
        others = sorted(set(self.host.peers) - {PLACEMENT_REGION_ID})
        if others:
            raise ValueError(f"a placement host holds other regions: {others}")
        peer = self.host.peers.get(PLACEMENT_REGION_ID)
        if peer is None:
            peer = self.host.bootstrap_region(placement_region(members))
        return peer.replica

    # -- serving ------------------------------------------------------------------------

    def serving(self) -> bool:
        """Whether this member leads and has applied every entry of earlier terms (its
        own term's first entry is applied): only then is its metadata the latest."""
        replica = self.replica
        if replica.stopped or not replica.is_leader:
            self._anchor = None
            return False
        if replica.raw.log.term(replica.applied) != replica.term:
            return False
        if self._anchor is None or self._anchor.term != replica.term:
            ms = self.driver.metadata.clock_ms
            self._anchor = _Anchor(replica.term, ms, self.clock.now())
        return True

    def now_ms(self) -> int:
        """The placement time (see the module docstring); valid while `serving()`."""
        anchor = self._anchor
        if anchor is None:
            return self.driver.metadata.clock_ms
        return anchor.ms + int((self.clock.now() - anchor.at) * 1000)

    @property
    def leader(self) -> NodeId:
        """The member this one believes leads (0: none known)."""
        return self.replica.lead

    # -- requests -----------------------------------------------------------------------

    def on_request(self, request: PlacementRequest) -> None:
        """A node's request: answered once applied, or refused at once."""

        def answer(results: tuple[Result, ...] | None) -> None:
            if results is None:
                self.stats.refused += 1
                reply = PlacementReply(
                    self.node_id, request.node_id, request.request_id, False, leader=self.leader
                )
            else:
                self.stats.served += 1
                reply = PlacementReply(
                    self.node_id, request.node_id, request.request_id, True, results
                )
            self.send_reply(request.node_id, reply)

        self.submit(request.commands, answer)

    def on_tso_request(self, request: TsoRequest) -> None:
        """A node asks for timestamps: answered once served, or refused (`cairn.placement.tso`)."""

        def grant(first: int | None) -> None:
            if first is None:
                reply = TsoReply(
                    self.node_id, request.node_id, request.request_id, False, leader=self.leader
                )
            else:
                reply = TsoReply(
                    self.node_id, request.node_id, request.request_id, True, first, request.count
                )
            self.send_reply(request.node_id, reply)

        self.tso.request(request.count, grant)

    def submit(self, commands: Sequence[Command], answer: Answer) -> None:
        """Apply `commands` through the group (a local caller's path, the admin API's);
        `answer` gets their results once applied, or None if this member cannot serve."""
        if not commands:
            answer(())
            return
        if not self.serving():
            answer(None)
            return
        self._queue.append((tuple(commands), answer))
        if self._flush_timer is None:
            self._flush_timer = self.clock.call_later(self.settings.batch_delay, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        queue, self._queue = self._queue, []
        if not queue:
            return
        if not self.serving():
            for _, answer in queue:
                answer(None)
            return
        now = self.now_ms()
        batch = [_stamped(c, now) for commands, _ in queue for c in commands]
        self.stats.proposals += 1
        self.stats.commands += len(batch)
        self.replica.propose(encode_batch(batch), lambda done: _answer_all(queue, done))

    def _on_tick(self) -> None:
        if self.replica.stopped:
            return
        late = self.replica.env.buggify("placement.tick_skipped")  # the driver's tick is late
        if not self._tick_in_flight and self.serving() and not late:
            self._tick_in_flight = True
            self.stats.ticks += 1
            self.submit((Tick(0),), self._ticked)
        self._tick_timer = self.clock.call_later(self.settings.tick_interval, self._on_tick)

    def _ticked(self, results: tuple[Result, ...] | None) -> None:
        self._tick_in_flight = False

    def stop(self) -> None:
        """Stop for good (the process is gone): no timers, no answers."""
        self.host.stop()
        self.tso.stop()
        self._tick_timer.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._queue.clear()


def _stamped(command: Command, now_ms: int) -> Command:
    """`command` carrying placement time `now_ms` (an `AllocIds` carries no time)."""
    if isinstance(command, AllocIds):
        return command
    return replace(command, now_ms=now_ms)


def _answer_all(queue: list[tuple[tuple[Command, ...], Answer]], done: Completion) -> None:
    """Hand each queued submitter its slice of an applied batch's results."""
    results = done.value
    total = sum(len(commands) for commands, _ in queue)
    if done.outcome is not Outcome.OK or not isinstance(results, tuple) or len(results) != total:
        for _, answer in queue:
            answer(None)
        return
    at = 0
    for commands, answer in queue:
        answer(results[at : at + len(commands)])
        at += len(commands)


class _OracleHost:
    """A member as its timestamp oracle sees it (`cairn.placement.tso.OracleHost`)."""

    def __init__(self, member: PlacementMember) -> None:
        self._member = member

    def serving(self) -> bool:
        """See `PlacementMember.serving`."""
        return self._member.serving()

    def current_term(self) -> int:
        """The member's Raft term."""
        return self._member.replica.term

    def saved_bound(self) -> int:
        """The highest bound applied on this member."""
        return self._member.machine.tso_bound_ms

    def propose_bound(self, bound_ms: int, done: Callable[[bool], None]) -> None:
        """Propose `SaveTsoBound(bound_ms)` as an entry of its own."""
        self._member.replica.propose(encode_batch([SaveTsoBound(bound_ms)]), _ok(done))

    def confirm(self, done: Callable[[bool], None]) -> None:
        """A linearizable read: the lease, or a ReadIndex round."""
        self._member.replica.read(_ok(done))


def _ok(done: Callable[[bool], None]) -> Callback:
    """A replica callback telling `done` whether the request completed OK."""
    return lambda completion: done(completion.outcome is Outcome.OK)
