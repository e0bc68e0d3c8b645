"""The metadata is a deterministic state machine: wire round trips, snapshots, replays."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from placement_harness import ModelCluster

from cairn.meta.region import Peer, PeerRole, Region, RegionEpoch, slot_bound
from cairn.placement import (
    ClusterMetadata,
    PlacementConfig,
    PlacementRules,
    RangeRule,
    RegionReport,
    decode_command,
    decode_result,
    decode_step,
    encode_command,
    encode_result,
    encode_step,
)
from cairn.placement.codec import DecodeError
from cairn.placement.commands import (
    Ack,
    AddNode,
    AllocIds,
    Command,
    NodeHeartbeat,
    RegionHeartbeat,
    RegionHeartbeatReply,
    SetConfig,
    SetNodeAdmin,
    SetRules,
    Tick,
)
from cairn.placement.model import DownPeer, HostedPeer, NodeAdmin, NodeStats
from cairn.placement.steps import MergeRegion, SplitPolicy, SplitRegion, TransferLeader

REGION = Region(
    7, slot_bound(3), b"", RegionEpoch(4, 9), (Peer(1, 1), Peer(2, 2, PeerRole.LEARNER))
)

SAMPLES: list[Command] = [
    AddNode(1, "10.0.0.1:7000", "10.0.0.1:6379", (("zone", "eu-1"),), 5),
    NodeHeartbeat(1, 6, NodeStats(100, 50, 3, 1), (HostedPeer(7, 1, 9),)),
    RegionHeartbeat(RegionReport(REGION, 1, 10, 20, 30, (2,), (DownPeer(2, 40_000),)), 7),
    SetNodeAdmin(1, NodeAdmin.DRAINING, 8, "decommission"),
    SetRules(PlacementRules(5, "rack", (RangeRule(b"\x00\x01", b"", 3, "zone", "r"),)), 9),
    SetConfig(PlacementConfig(down_after_ms=5_000, disconnected_after_ms=1_000), 10),
    AllocIds(3),
    Tick(11),
]


@pytest.mark.parametrize("command", SAMPLES, ids=lambda c: type(c).__name__)
def test_commands_round_trip(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


def test_enum_types_survive_the_wire() -> None:
    command = decode_command(encode_command(SAMPLES[2]))
    assert isinstance(command, RegionHeartbeat)
    assert [type(p.role) for p in command.report.region.peers] == [PeerRole, PeerRole]
    admin = decode_command(encode_command(SAMPLES[3]))
    assert isinstance(admin, SetNodeAdmin) and type(admin.admin) is NodeAdmin


def test_steps_and_results_round_trip() -> None:
    split = SplitRegion(RegionEpoch(2, 3), SplitPolicy.KEY, 9, (10, 11), b"\x00\x07", True)
    for step in (split, MergeRegion(1, RegionEpoch(), 2, RegionEpoch(3, 1)), TransferLeader(1, 2)):
        assert decode_step(encode_step(step)) == step
    assert decode_result(encode_result(Ack(False, "why"))) == Ack(False, "why")


@given(
    st.builds(
        RegionReport,
        st.just(REGION),
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**40),
        st.integers(0, 2**40),
        st.lists(st.integers(0, 2**32), max_size=4).map(tuple),
        st.lists(st.builds(DownPeer, st.integers(0, 99), st.integers(0, 10**9)), max_size=3).map(
            tuple
        ),
    ),
    st.integers(0, 2**62),
)
def test_any_report_round_trips(report: RegionReport, now: int) -> None:
    command = RegionHeartbeat(report, now)
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", b"\x93\x01\x02\x03", encode_step(TransferLeader(1, 2))]
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_command(data)


def busy_cluster(seed: int, rounds: int) -> tuple[ModelCluster, list[bytes]]:
    rng = Random(seed)
    cluster = ModelCluster(rng, ["a", "b", "c", "a", "b", "c"], record=True)
    for i in range(rounds):
        for model in cluster.regions.values():
            model.size += rng.randint(0, 30)
        if i == 20:
            cluster.crash(2)
        if i == 60:
            cluster.drain(4)
        cluster.round()
    return cluster, cluster.log


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32))
def test_same_commands_same_state(seed: int) -> None:
    cluster, log = busy_cluster(seed, 90)
    replica = ClusterMetadata(cluster.driver.metadata.config)
    results = [replica.apply(decode_command(data)) for data in log]
    assert replica.snapshot() == cluster.driver.snapshot()
    assert any(results)


def test_a_restored_replica_continues_identically() -> None:
    cluster, log = busy_cluster(7, 90)
    config = cluster.driver.metadata.config
    original = ClusterMetadata(config)
    half = len(log) // 2
    for data in log[:half]:
        original.apply(decode_command(data))
    restored = ClusterMetadata()
    restored.restore(original.snapshot())
    assert restored.snapshot() == original.snapshot()
    for data in log[half:]:
        command = decode_command(data)
        assert restored.apply(command) == original.apply(command)
    assert restored.snapshot() == original.snapshot() == cluster.driver.snapshot()
    assert len(original.region_map) > 1 and original.history


def test_bad_rules_and_config_are_refused_not_applied() -> None:
    md = ClusterMetadata()
    overlapping = (RangeRule(b"\x00", b"\x05", 3), RangeRule(b"\x00\x03", b"\x09", 3))
    assert md.apply(SetRules(PlacementRules(ranges=overlapping), 1)) == Ack(
        False, "rules '' and '' overlap"
    )
    bad = PlacementConfig(merge_size_bytes=10**12)
    result = md.apply(SetConfig(bad, 2))
    assert isinstance(result, Ack) and not result.ok
    assert md.config == PlacementConfig() and md.rules == PlacementRules()


def test_a_deposed_leaders_late_report_is_refused() -> None:
    # Region 7's leadership moved from peer 1 (term 3) to peer 2 (term 4); a report that
    # peer 1 sent before it learned of term 4 arrives last and must not undo the move.
    voters = (Peer(1, 1), Peer(2, 2), Peer(3, 3))
    region = Region(7, peers=voters)
    md = ClusterMetadata()
    for node in (1, 2, 3):
        md.apply(AddNode(node, f"10.0.0.{node}:7000", f"10.0.0.{node}:6379", (), 1))
    md.apply(RegionHeartbeat(RegionReport(region, 1, term=3), 2))
    reply = md.apply(RegionHeartbeat(RegionReport(region, 2, term=4), 3))
    assert isinstance(reply, RegionHeartbeatReply) and reply.accepted
    late = md.apply(RegionHeartbeat(RegionReport(region, 1, term=3), 4))
    assert isinstance(late, RegionHeartbeatReply) and not late.accepted
    assert "stale leader" in late.reason
    assert md.region_infos[7].report.leader_peer_id == 2
    newer_epoch = Region(7, peers=voters, epoch=RegionEpoch(2, 1))
    md.apply(RegionHeartbeat(RegionReport(newer_epoch, 3, term=2), 5))  # a new epoch: taken
    assert md.region_infos[7].report.leader_peer_id == 3


def test_a_founders_placeholder_never_overwrites_the_nodes_own_registration() -> None:
    # the placement leader registers every founder it has not heard of yet (no client
    # address, no labels); applied after the node's own registration it must not erase
    # the node's zone (the dashboard test saw node 1 lose its zone this way)
    from cairn.placement.driver import PlacementDriver

    driver = PlacementDriver()
    driver.add_node(1, "10.0.0.1:17001", "10.0.0.1:7001", {"zone": "a"}, 0)
    driver.add_node(1, "10.0.0.1:17001", "", {}, 0)
    node = driver.metadata.nodes[1]
    assert node.labels == (("zone", "a"),) and node.client_address == "10.0.0.1:7001"
    driver.add_node(1, "10.0.0.9:17001", "10.0.0.9:7001", {"zone": "b"}, 0)
    node = driver.metadata.nodes[1]
    assert node.labels == (("zone", "b"),) and node.client_address == "10.0.0.9:7001"
