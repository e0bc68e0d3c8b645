"""The placement wiring's pure parts, without ports or processes: the new config keys, who
hosts the placement group, the driver's knobs, the address book, and how a node merges
the placement leader's region map with the regions it hosts."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.meta.region import Region
from cairn.runtime.config import ConfigError, from_mapping
from cairn.runtime.frames import FrameError, FrameKind
from cairn.runtime.node import _not_hosted
from cairn.runtime.placement_wiring import (
    NodePlacement,
    RemoteRegion,
    first_id,
    placement_config,
    placement_members,
)
from cairn.runtime.real_env import LoopClock
from cairn.runtime.region_layout import initial_layout
from cairn.runtime.transport import TcpTransport
from cairn.shard.host import RegionHost
from cairn.shard.region_machine import encode_region


def config(**extra: Any) -> Any:
    raw: dict[str, Any] = {
        "node_id": 1,
        "data_dir": "/tmp/x",
        "peers": {str(i): f"127.0.0.1:{17000 + i}" for i in range(1, 6)},
        "cluster_secret": "a-test-secret-of-enough-bytes",
    }
    return from_mapping(raw | extra)


def test_labels_are_a_table_of_strings() -> None:
    assert config().labels == {}
    assert config(labels={"zone": "a", "rack": "r1"}).labels == {"zone": "a", "rack": "r1"}
    with pytest.raises(ConfigError, match=r"labels\.zone"):
        config(labels={"zone": 3})
    with pytest.raises(ConfigError, match="labels"):
        config(labels="zone=a")


def test_new_keys_have_defaults_and_are_validated() -> None:
    c = config()
    assert (c.placement_members, c.down_after_s, c.join) == (3, 30.0, None)
    assert config(down_after_s=2.5).down_after_s == 2.5
    assert config(join="10.0.0.1:17001").join == ("10.0.0.1", 17001)
    with pytest.raises(ConfigError, match="down_after_s"):
        config(down_after_s=0)
    with pytest.raises(ConfigError, match="down_after_s"):
        config(down_after_s="soon")
    with pytest.raises(ConfigError, match="placement_members"):
        config(placement_members=0)
    with pytest.raises(ConfigError, match="placement_heartbeat_ms"):
        config(down_after_s=1, placement_heartbeat_ms=1000)
    with pytest.raises(ConfigError, match="join"):
        config(join="nowhere")


def test_a_joining_node_needs_no_founding_peers() -> None:
    secret = {"cluster_secret": "a-test-secret-of-enough-bytes"}
    joiner = from_mapping(
        {"node_id": 7, "data_dir": "/tmp/x", "join": "127.0.0.1:17001", "peers": {}} | secret
    )
    assert placement_members(joiner) == ()
    alone = from_mapping(
        {"node_id": 7, "data_dir": "/tmp/x", "join": "127.0.0.1:1", "peers": {"7": "h:7"}} | secret
    )
    assert placement_members(alone) == ()
    with pytest.raises(ConfigError, match="peers"):
        from_mapping({"node_id": 7, "data_dir": "/tmp/x", "peers": {}} | secret)


def test_the_placement_group_is_the_first_founders() -> None:
    assert placement_members(config()) == (1, 2, 3)
    assert placement_members(config(placement_members=5)) == (1, 2, 3, 4, 5)
    assert placement_members(config(placement_members=9)) == (1, 2, 3, 4, 5)


def test_allocated_ids_never_collide_with_founding_ones() -> None:
    c = config(initial_regions=8)
    founding = initial_layout(sorted(c.peers), c.initial_regions)
    used = {r.id for r in founding} | {p.id for r in founding for p in r.peers}
    assert first_id(c) > max(used)


def test_the_driver_takes_its_down_time_and_split_merge_thresholds_from_the_config() -> None:
    regions = {"split_size_bytes": 1000, "merge_size_bytes": 400, "merge_keys": 7}
    knobs = placement_config(config(down_after_s=3, regions=regions))
    knobs.validate()
    assert knobs.down_after_ms == 3000 and knobs.disconnected_after_ms <= 3000
    assert (knobs.split_size_bytes, knobs.merge_size_bytes, knobs.merge_keys) == (1000, 400, 7)
    assert knobs.split_merge_interval_ms == 3_600_000


def test_merge_thresholds_that_would_split_again_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"regions\.merge_size_bytes"):
        config(regions={"split_size_bytes": 1000, "merge_size_bytes": 600})
    with pytest.raises(ConfigError, match=r"regions\.merge_keys"):
        config(regions={"merge_keys": -1})
    with pytest.raises(ConfigError, match=r"regions\.split_size_bytes"):
        config(regions={"split_size_bytes": "big"})


class _Loop:
    def time(self) -> float:
        return 0.0


def wiring(node_id: int = 1, **extra: Any) -> tuple[NodePlacement, TcpTransport]:
    c = config(node_id=node_id, **extra)
    peers = {i: a for i, a in c.peers.items() if i != node_id}
    transport = TcpTransport(node_id, c.peer_addr, peers)
    clock = LoopClock(cast(Any, _Loop()))
    return NodePlacement(c, cast(RegionHost, None), transport, clock, {}), transport


def test_the_address_book_learns_new_nodes_and_keeps_configured_addresses() -> None:
    placement, transport = wiring()
    learned = placement.learn([(2, "10.9.9.9", 1), (6, "127.0.0.1", 17006), (1, "x", 1)])
    assert learned == [(6, "127.0.0.1", 17006)]
    assert transport.peers[2] == ("127.0.0.1", 17002)
    assert transport.peers[6] == ("127.0.0.1", 17006)
    assert placement.learn([(6, "127.0.0.1", 17099)]) == []
    assert (1, "127.0.0.1", 16379) in placement.book()
    frame = [FrameKind.PEERS, [[7, "127.0.0.1", 17007]], False, [1, 2, 3]]
    placement._on_peers_frame(2, frame)
    assert transport.peers[7] == ("127.0.0.1", 17007)
    with pytest.raises(FrameError):
        placement._on_peers_frame(2, [FrameKind.PEERS, [["x"]], False, []])
    with pytest.raises(FrameError):
        placement._on_placement_frame(2, [FrameKind.PLACEMENT, b"\x01garbage"])


def test_a_pushed_region_map_is_adopted_and_malformed_ones_refused() -> None:
    changes: list[int] = []
    placement, _ = wiring()
    placement.on_layout = lambda: changes.append(1)
    layout = initial_layout([1, 2, 3], 4)
    items: list[Any] = [[encode_region(r), 2] for r in layout]
    placement._on_regions_frame(3, [FrameKind.REGIONS, items])
    placement._on_regions_frame(3, [FrameKind.REGIONS, items])
    assert changes == [1]
    assert placement.remote[2] == RemoteRegion(layout[1], 2)
    with pytest.raises(FrameError):
        placement._on_regions_frame(3, [FrameKind.REGIONS, [[["bad"], 1]]])


@given(st.integers(2, 12), st.data())
def test_remote_regions_fill_exactly_what_the_node_does_not_host(count: int, data: Any) -> None:
    layout = initial_layout([1, 2, 3], count)
    hosted = data.draw(st.lists(st.sampled_from(layout), unique_by=lambda r: r.id))
    remote = [RemoteRegion(r, 1) for r in layout]
    kept = _not_hosted(remote, hosted)
    assert {r.region.id for r in kept} == {r.id for r in layout} - {r.id for r in hosted}


def test_a_remote_region_overlapping_a_hosted_one_is_left_out() -> None:
    a, b = initial_layout([1, 2, 3], 2)
    wider = Region(9, a.start, b.end, peers=a.peers)
    assert _not_hosted([RemoteRegion(wider, 1)], [a]) == []
    assert _not_hosted([RemoteRegion(b, 1)], [a]) == [RemoteRegion(b, 1)]


def test_no_hosted_region_keeps_every_remote_one() -> None:
    layout = initial_layout([1, 2, 3], 3)
    remote = [RemoteRegion(r, None) for r in layout]
    assert _not_hosted(remote, []) == remote
