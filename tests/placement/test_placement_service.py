"""The placement group: its entries and wire, a leader that serves only what is applied,
placement time that survives failovers, and operators that survive them too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pd_group_harness import MEMBERS, new_group

from cairn.meta.region import Peer, Region
from cairn.placement import EventKind, NodeState, PlacementDriver
from cairn.placement.codec import DecodeError
from cairn.placement.commands import (
    CODEC,
    Ack,
    AddNode,
    AllocIds,
    IdRange,
    NodeHeartbeat,
    NodeHeartbeatReply,
    RegionHeartbeat,
    RegionHeartbeatReply,
    Tick,
)
from cairn.placement.model import HostedPeer, NodeStats, RegionReport
from cairn.placement.service import (
    PlacementMachine,
    PlacementReply,
    PlacementRequest,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
)
from cairn.placement.steps import AddLearner

hosted = st.builds(HostedPeer, st.integers(1, 99), st.integers(1, 999), st.integers(0, 9))
commands = st.one_of(
    st.builds(
        NodeHeartbeat,
        st.integers(1, 9),
        st.integers(0, 10**9),
        st.builds(NodeStats, st.integers(0, 99), st.integers(0, 99)),
        st.lists(hosted, max_size=3).map(tuple),
    ),
    st.builds(Tick, st.integers(0, 10**9)),
    st.builds(AllocIds, st.integers(1, 9)),
)


@given(st.lists(commands, max_size=5), st.integers(1, 9), st.integers(0, 10**6))
def test_requests_replies_and_entries_survive_the_wire(
    batch: list[NodeHeartbeat | Tick | AllocIds], node: int, seq: int
) -> None:
    request = PlacementRequest(node, seq, tuple(batch))
    assert decode_message(encode_message(request)) == request
    reply = PlacementReply(2, node, seq, True, (Ack(True), NodeHeartbeatReply(True)))
    assert decode_message(encode_message(reply)) == reply
    assert decode_batch(encode_batch(batch)) == tuple(batch)


def test_an_entry_that_is_not_a_list_of_commands_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_batch(CODEC.encode(Tick(5)))
    with pytest.raises(DecodeError):
        decode_batch(CODEC.encode((Tick(5), Ack(True))))
    with pytest.raises(DecodeError):
        decode_message(CODEC.encode(Tick(5)))


def test_the_machine_applies_batches_and_a_restored_copy_continues_identically() -> None:
    machine = PlacementMachine(PlacementDriver())
    first = (AddNode(1, "a", "b", (), 10), NodeHeartbeat(1, 20), AllocIds(3))
    results = machine.apply(7, encode_batch(first))
    assert results[0] == Ack(True) and results[1] == NodeHeartbeatReply(True)
    assert isinstance(results[2], IdRange) and results[2].count == 3
    assert machine.apply(8, b"\x01garbage") == () and machine.applied_index == 8
    copy = PlacementMachine(PlacementDriver())
    copy.restore(machine.snapshot())
    assert copy.applied_index == 8
    more = encode_batch((AllocIds(2), Tick(5000)))
    assert copy.apply(9, more) == machine.apply(9, more)
    assert copy.snapshot() == machine.snapshot()


def test_only_the_leader_serves_and_a_follower_names_it() -> None:
    group = new_group()
    leader = group.wait_leader()
    follower = next(n for n in MEMBERS if n != leader.node_id)
    refused = group.request(4, follower, (AddNode(4, "n4", "c4", (), 0),))
    assert not refused.served and refused.leader == leader.node_id
    assert refused.member == follower
    served = group.request(4, leader.node_id, (AddNode(4, "n4", "c4", (), 0), NodeHeartbeat(4, 0)))
    assert served.served and served.results == (Ack(True), NodeHeartbeatReply(True))
    group.run(0.2)
    for member in group.members.values():
        assert [row.id for row in member.driver.nodes()] == [4]


def test_commands_are_stamped_with_placement_time_not_the_senders() -> None:
    group = new_group()
    group.ask_leader(4, (AddNode(4, "n4", "c4", (), 0), NodeHeartbeat(4, 10**12)))
    leader = group.wait_leader()
    assert leader.driver.metadata.clock_ms < 10_000


def test_a_silent_node_is_marked_down_by_the_ticks_and_a_live_one_is_not() -> None:
    group = new_group()
    for node in (4, 5):
        group.ask_leader(node, (AddNode(node, f"n{node}", "", (), 0), NodeHeartbeat(node, 0)))
    for _ in range(20):  # 2 s: node 5 heartbeats, node 4 is silent
        group.ask_leader(5, (NodeHeartbeat(5, 0),))
    states = {row.id: row.state for row in group.wait_leader().driver.nodes()}
    assert states == {4: NodeState.DOWN, 5: NodeState.UP}


def test_placement_time_continues_across_failovers_whatever_the_members_clocks() -> None:
    group = new_group(offsets={1: 0.0, 2: 5000.0, 3: -5000.0})
    group.ask_leader(4, (AddNode(4, "n4", "", (), 0), NodeHeartbeat(4, 0)))
    for _ in range(3):
        old = group.wait_leader()
        # The last placement time the group recorded: time stands still from there until
        # the next leader's first entry (the old leader's unstamped reading, `now_ms`,
        # was never seen by anyone and may be up to a tick interval later).
        before = old.driver.metadata.clock_ms
        group.crash(old.node_id)
        new = group.wait_leader()
        group.ask_leader(4, (NodeHeartbeat(4, 0),))
        assert 0 <= new.driver.metadata.clock_ms - before < 2000
        group.start(old.node_id)
        group.run(0.5)


def test_an_outage_of_the_group_longer_than_the_down_time_marks_no_node_down() -> None:
    group = new_group()
    group.ask_leader(4, (AddNode(4, "n4", "", (), 0), NodeHeartbeat(4, 0)))
    survivor = group.wait_leader().node_id
    for node in MEMBERS:
        if node != survivor:
            group.crash(node)
    group.run(3.0)  # no quorum: 2.5 times the down time passes unheard
    for node in MEMBERS:
        if node != survivor:
            group.start(node)
    group.wait_leader()
    group.run(0.3)  # ticks run, before node 4 is heard again
    driver = group.wait_leader().driver
    assert [(r.id, r.state) for r in driver.nodes()] == [(4, NodeState.UP)]
    assert not [e for e in driver.events() if e.kind is EventKind.NODE_DOWN]


def _region_on(nodes: tuple[int, ...]) -> Region:
    return Region(1, peers=tuple(Peer(10 + n, n) for n in nodes))


def test_a_new_leader_continues_the_operators_in_flight() -> None:
    group = new_group()
    nodes = (1, 2, 3, 4)
    for node in nodes:
        group.ask_leader(node, (AddNode(node, f"n{node}", "", (), 0), NodeHeartbeat(node, 0)))
    report = RegionReport(_region_on((1, 2)), leader_peer_id=11)
    group.ask_leader(5, (RegionHeartbeat(report, 0),))
    group.run(0.3)  # a tick starts the repair: a third replica
    step = group.ask_leader(5, (RegionHeartbeat(report, 0),)).results[0]
    assert isinstance(step, RegionHeartbeatReply) and isinstance(step.step, AddLearner)
    old = group.wait_leader()
    group.crash(old.node_id)
    new = group.wait_leader()
    assert new is not old
    again = group.ask_leader(5, (RegionHeartbeat(report, 0),)).results[0]
    assert again == step
    assert [op.id for op in new.driver.operators()] == [step.operator_id]


def test_a_restarted_member_catches_up_by_snapshot_to_the_same_state() -> None:
    group = new_group()
    leader = group.wait_leader()
    lagging = next(n for n in MEMBERS if n != leader.node_id)
    group.crash(lagging)
    for i in range(40):  # past the snapshot threshold of 20 entries
        group.ask_leader(4, (AddNode(100 + i, f"n{100 + i}", "", (), 0),))
    member = group.start(lagging)
    group.run(1.0)
    assert member.replica.counters.snapshots_restored >= 1
    for _ in range(100):
        applied = {m.replica.applied for m in group.members.values()}
        if len(applied) == 1:
            break
        group.run(0.002)
    assert len(applied) == 1
    images = {m.driver.snapshot() for m in group.members.values()}
    assert len(images) == 1
    assert len(member.driver.nodes()) == 40
