"""Keyspace notifications on a node: collect them while applying, publish them on the
region's leader (`cairn.store.notifications` computes them).

Theory of operation. `notify-keyspace-events` is a node's CONFIG parameter, as in Redis
Cluster, where every master publishes the events of its own keys and must be configured
on its own. In Cairn the node that publishes a region's events is the region's Raft
leader, which moves, so every node must be configured alike (CONFIG SET on each, like
Redis Cluster's masters); a node whose setting is empty publishes nothing for the regions
it leads. The setting is not replicated through Raft on purpose: it is not data (it
changes no reply and no stored byte), and a Raft entry per CONFIG SET would need a region
to carry a node-wide setting.

While the setting can publish something (a channel kind, K or E, and a class), every
region machine of the node collects the events of each entry it applies
(`StoreMachine.collect_events`); followers compute them too (the same list, since
applying is deterministic) and drop them. After each entry, the replica's observer calls
`on_apply`: on the leader, if the entry belongs to the leader's current term, the events
become PUBLISH messages through the cluster-wide pub/sub fan-out
(`cairn.runtime.pubsub.PubSub.publish`), so a subscriber on any node receives them, in
apply order per region. An entry of an earlier term may have been published by the old
leader already, so it is not published again: delivery is at most once, like Redis
pub/sub, and a leader change may drop the events of the entries in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from cairn.raft.types import Entry
from cairn.resp.reply import Reply
from cairn.runtime.range_store import StoreRangeMachine
from cairn.shard.replica import Replica
from cairn.store.machine import StoreMachine
from cairn.store.notifications import channel_messages, parse_flags, publishes

log = logging.getLogger("cairn.keyspace_events")

NOTIFY_PARAM = "notify-keyspace-events"

Publish = Callable[[bytes, bytes], Reply]
"""PUBLISH channel message, cluster-wide (`PubSub.publish`)."""


class KeyspaceEvents:
    """This node's `notify-keyspace-events` and the publishing of its leaders' events."""

    def __init__(self, publish: Publish, machines: Callable[[], Iterable[StoreMachine]]) -> None:
        self.flags = 0
        """The parsed setting (`cairn.store.notifications` bits)."""
        self._publish = publish
        self._machines = machines
        self.published = 0
        """Messages published so far (both channel kinds counted)."""

    @property
    def active(self) -> bool:
        """Whether the setting can publish anything (machines collect events then)."""
        return publishes(self.flags)

    def configure(self, value: bytes) -> None:
        """Take a new `notify-keyspace-events` value (validated by CONFIG SET already)."""
        flags = parse_flags(value)
        self.flags = 0 if flags is None else flags
        for machine in self._machines():
            self.adopt(machine)

    def adopt(self, machine: StoreMachine) -> None:
        """Make a (new) region machine collect events or not, as the setting says."""
        machine.collect_events = self.active
        if not machine.collect_events:
            machine.events.clear()

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        """After `entry` was applied: take its events; publish them if this node leads the
        region in the entry's term (see the module docstring)."""
        if not self.flags:
            return  # the usual case: nothing collected (`adopt` cleared what was)
        store = _store_of(replica)
        if store is None or not store.events:
            return
        events = store.take_events(entry.index)
        if not events or not replica.is_leader or entry.term != replica.term:
            return
        for channel, message in channel_messages(self.flags, events):
            self._publish(channel, message)
            self.published += 1


def _store_of(replica: Replica) -> StoreMachine | None:
    """The store machine a hosted replica applies to (None for any other machine)."""
    inner = getattr(replica.machine, "inner", None)
    return inner.store if isinstance(inner, StoreRangeMachine) else None
