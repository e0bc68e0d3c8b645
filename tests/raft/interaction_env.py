"""A scripted cluster of `RawNode`s for golden interaction tests (etcd's InteractionEnv).

Theory of operation: the environment holds a set of nodes, each a `RawNode` over its own
`MemoryStorage`, a deterministic `random.Random` (seeded with the node id) and a toy state
machine (the list of applied entry payloads). Messages a node hands out in a `Ready` are
not delivered at once: they wait in one ordered queue until a `deliver-msgs` (or
`stabilize`) command hands them to their recipients, so a script controls exactly which
message arrives when, and which is lost.

`process_ready` follows the `Ready` contract to the letter: persist the snapshot, entries
and hard state to the storage, then queue the messages and the persisted messages, then
apply committed entries (decoding conf-change entries and calling `apply_conf_change`),
then `advance`.

The environment also watches every node's role, term and leader around each action and
prints `INFO` lines when they change (the core itself never logs), so that a golden file
reads like a story: `INFO 1 became leader at term 1`.

The command handlers live in `interaction_commands.py`; this module is the mechanism.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import msgpack

from cairn.raft.config import Config
from cairn.raft.describe import describe_conf_state, describe_message, describe_ready
from cairn.raft.errors import RaftError
from cairn.raft.progress import Progress, ProgressState
from cairn.raft.rawnode import RawNode
from cairn.raft.ready import Ready
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    NodeId,
    Snapshot,
    SnapshotMetadata,
    StateRole,
    decode_conf_change,
)

INDENT = "  "

_ROLE_WORD = {
    StateRole.FOLLOWER: "follower",
    StateRole.CANDIDATE: "candidate",
    StateRole.PRE_CANDIDATE: "pre-candidate",
    StateRole.LEADER: "leader",
}


@dataclass(frozen=True, slots=True)
class Observed:
    """The part of a node's state whose changes the environment reports."""

    role: StateRole
    term: int
    lead: NodeId


@dataclass(slots=True)
class Node:
    """One member: the core, its storage and a toy state machine.

    `applied` holds `(index, data)` of every applied normal entry (the state machine);
    `conf_states` holds `(index, ConfState)` of every configuration applied, oldest first,
    so that a snapshot at any applied index carries the configuration of that index.
    """

    id: NodeId
    config: Config
    storage: MemoryStorage
    raw: RawNode
    applied_index: int = 0
    applied: list[tuple[int, bytes]] = field(default_factory=list)
    conf_states: list[tuple[int, ConfState]] = field(default_factory=list)

    def observe(self) -> Observed:
        """The node's role, term and leader now."""
        r = self.raw.raft
        return Observed(role=r.role, term=r.term, lead=r.lead)

    def conf_state_at(self, index: int) -> ConfState:
        """The configuration in force at an applied `index`."""
        current = ConfState()
        for at, cs in self.conf_states:
            if at <= index:
                current = cs
        return current

    def state_machine_at(self, index: int) -> bytes:
        """The state machine image at `index`, as snapshot data."""
        return bytes(msgpack.packb([[i, d] for i, d in self.applied if i <= index]))

    def restore(self, snap: Snapshot) -> None:
        """Replace the state machine by a snapshot's image."""
        pairs = msgpack.unpackb(snap.data) if snap.data else []
        self.applied = [(int(i), bytes(d)) for i, d in pairs]
        self.applied_index = snap.metadata.index
        self.conf_states = [(snap.metadata.index, snap.metadata.conf_state)]


class Output:
    """Lines of output of one command, with a current indentation and a log level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.verbose = True
        self.silent = False

    def line(self, text: str) -> None:
        """Add (possibly multi-line) text at the current indentation."""
        if self.silent:
            return
        for part in text.split("\n"):
            self.lines.append(INDENT * self.depth + part)

    def error(self, text: str) -> None:
        """Add an error line, shown even when the output is silenced."""
        self.lines.append(INDENT * self.depth + f"error: {text}")

    def log(self, text: str) -> None:
        """Add an `INFO` line unless logging is off."""
        if self.verbose:
            self.line(f"INFO {text}")

    @contextmanager
    def indented(self, header: str) -> Iterator[None]:
        """Print `header`, then indent what follows within the block."""
        self.line(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @contextmanager
    def nested(self) -> Iterator[None]:
        """Indent what follows within the block."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def take(self) -> str:
        """The output so far (an `ok` if there is none), and start afresh."""
        text = "\n".join(self.lines) if self.lines else "ok"
        self.lines = []
        self.depth = 0
        return text


@dataclass(slots=True)
class InteractionEnv:
    """The nodes, the queue of messages in flight, and the partitions of a scripted run."""

    nodes: dict[NodeId, Node] = field(default_factory=dict)
    queue: list[Message] = field(default_factory=list)
    isolated: set[NodeId] = field(default_factory=set)
    out: Output = field(default_factory=Output)

    # -- nodes ------------------------------------------------------------------------

    def add_node(self, config: Config, storage: MemoryStorage) -> Node:
        """Start a node over `storage`, with a random source seeded by its id."""
        raw = RawNode(config, storage, random.Random(config.id))
        node = Node(id=config.id, config=config, storage=storage, raw=raw)
        snap = storage.snapshot()
        node.applied_index = snap.metadata.index
        node.conf_states = [(snap.metadata.index, snap.metadata.conf_state)]
        self.nodes[config.id] = node
        return node

    def restart(self, node_id: NodeId) -> None:
        """Crash a node and start it again from what its storage holds.

        The toy state machine counts as durable, so the node restarts with
        `applied` = what it had applied; everything else comes from storage. Messages
        already queued stay in the network and reach the new incarnation.
        """
        old = self.node(node_id)
        config = replace(old.config, applied=old.applied_index)
        raw = RawNode(config, old.storage, random.Random(node_id))
        old.raw, old.config = raw, config

    def node(self, node_id: NodeId) -> Node:
        """The node with this id; a script naming an unknown one is an error."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise ValueError(f"no node {node_id}") from None

    def ids(self) -> list[NodeId]:
        """Every node id in increasing order."""
        return sorted(self.nodes)

    # -- watching ---------------------------------------------------------------------

    def act(self, node_id: NodeId, action: Callable[[RawNode], object]) -> None:
        """Run `action` on a node, printing errors and the role changes it caused."""
        node = self.node(node_id)
        before = {i: n.observe() for i, n in self.nodes.items()}
        try:
            action(node.raw)
        except RaftError as err:
            self.out.error(f"{type(err).__name__}: {err}")
        self._report_changes(before)

    def _report_changes(self, before: dict[NodeId, Observed]) -> None:
        for node_id in self.ids():
            old, new = before.get(node_id), self.nodes[node_id].observe()
            if old is None or old == new:
                continue
            if new.role != old.role or new.term != old.term:
                self.out.log(f"{node_id} became {_ROLE_WORD[new.role]} at term {new.term}")
            if new.lead != old.lead and new.role is not StateRole.LEADER:
                if new.lead:
                    self.out.log(f"{node_id} elected leader {new.lead} at term {new.term}")
                else:
                    self.out.log(f"{node_id} lost leader {old.lead} at term {new.term}")

    # -- the Ready loop ---------------------------------------------------------------

    def process_ready(self, node_id: NodeId) -> None:
        """Handle one `Ready` of a node: persist, send, apply, advance."""
        node = self.node(node_id)
        with self.out.indented(f"> {node_id} handling Ready"):
            if not node.raw.has_ready():
                self.out.line("<empty Ready>")
                return
            rd = node.raw.ready()
            self.out.line(describe_ready(rd))
            self._persist(node, rd)
            self.queue.extend(rd.messages)
            self.queue.extend(rd.persisted_messages)
            self._apply(node, rd.committed_entries)
            self.act(node_id, lambda raw: raw.advance(rd))

    def _persist(self, node: Node, rd: Ready) -> None:
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            node.storage.apply_snapshot(rd.snapshot)
            node.restore(rd.snapshot)
        node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)

    def _apply(self, node: Node, entries: tuple[Entry, ...]) -> None:
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(node, entry)
            elif entry.data:
                node.applied.append((entry.index, entry.data))
            node.applied_index = entry.index

    def _apply_conf_change(self, node: Node, entry: Entry) -> None:
        cc = decode_conf_change(entry.data)
        before = {i: n.observe() for i, n in self.nodes.items()}
        try:
            cs = node.raw.apply_conf_change(cc)
        except RaftError as err:
            self.out.error(f"{type(err).__name__}: {err}")
            return
        node.conf_states.append((entry.index, cs))
        self.out.log(f"{node.id} switched to configuration {describe_conf_state(cs)}")
        self._report_changes(before)

    # -- the network ------------------------------------------------------------------

    def take_messages(
        self, recipients: set[NodeId] | None, types: set[str] | None
    ) -> list[Message]:
        """Remove from the queue, in order, the messages matching both filters."""
        taken: list[Message] = []
        kept: list[Message] = []
        for m in self.queue:
            wanted = (recipients is None or m.to in recipients) and (
                types is None or m.type.value in types
            )
            (taken if wanted else kept).append(m)
        self.queue = kept
        return taken

    def deliver(self, messages: list[Message]) -> None:
        """Step each message into its recipient, grouped by recipient in id order."""
        for node_id in sorted({m.to for m in messages}):
            with self.out.indented(f"> {node_id} receiving messages"):
                for m in messages:
                    if m.to == node_id:
                        self._deliver_one(m)

    def _deliver_one(self, m: Message) -> None:
        if m.to not in self.nodes:
            self.out.line(f"dropped (no such node): {describe_message(m)}")
        elif self.cut(m.frm, m.to):
            self.out.line(f"dropped (partitioned): {describe_message(m)}")
        else:
            self.out.line(describe_message(m))
            with self.out.nested():
                self.act(m.to, lambda raw: raw.step(m))

    def cut(self, a: NodeId, b: NodeId) -> bool:
        """Whether the link between two nodes is down."""
        return a != b and (a in self.isolated or b in self.isolated)

    def stabilize(self, ids: list[NodeId]) -> None:
        """Process Readies and deliver messages among `ids` until nothing is left to do."""
        members = set(ids)
        while True:
            busy = False
            for node_id in ids:
                if self.node(node_id).raw.has_ready():
                    self.process_ready(node_id)
                    busy = True
            msgs = self.take_messages(members, None)
            if msgs:
                self.deliver(msgs)
                busy = True
            if not busy:
                return

    # -- storage ----------------------------------------------------------------------

    def compact(self, node_id: NodeId, index: int) -> Snapshot:
        """Snapshot a node's state machine at an applied `index` and compact its log."""
        node = self.node(node_id)
        if index > node.applied_index:
            raise ValueError(f"cannot compact {node_id} at {index}: applied {node.applied_index}")
        snap = node.storage.create_snapshot(
            index, node.conf_state_at(index), node.state_machine_at(index)
        )
        node.storage.compact(index)
        return snap


def bootstrap_storage(conf_state: ConfState, index: int) -> MemoryStorage:
    """A storage whose group starts at `index` (0: a brand new group) with this membership."""
    if index == 0:
        return MemoryStorage.bootstrap(conf_state)
    storage = MemoryStorage()
    meta = SnapshotMetadata(index=index, term=1, conf_state=conf_state)
    storage.apply_snapshot(Snapshot(data=msgpack.packb([]), metadata=meta))
    storage.set_hard_state(HardState(term=1, commit=index))
    return storage


def describe_progress(node_id: NodeId, pr: Progress) -> str:
    """One follower as the leader sees it: `2: StateReplicate match=3 next=4 inflight=1`."""
    parts = [f"{node_id}: {pr.state.value} match={pr.match} next={pr.next_index}"]
    if pr.is_learner:
        parts.append("learner")
    if pr.is_paused():
        parts.append("paused")
    if pr.state is ProgressState.SNAPSHOT:
        parts.append(f"pending-snap={pr.pending_snapshot}")
    if pr.inflights.count():
        full = "[full]" if pr.inflights.full() else ""
        parts.append(f"inflight={pr.inflights.count()}{full}")
    if not pr.recent_active:
        parts.append("inactive")
    return " ".join(parts)
