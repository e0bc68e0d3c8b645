"""The API's values survive JSON both ways; malformed documents are refused with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.admin.views import (
    EventPage,
    EventView,
    Health,
    NodeCounts,
    NodeStatus,
    NodeView,
    PeerView,
    RegionView,
    SchemaError,
    StatusView,
    describe_bound,
    describe_slots,
    event_page_from_json,
    event_page_to_json,
    node_from_json,
    node_to_json,
    region_from_json,
    region_to_json,
    rules_from_json,
    rules_to_json,
    status_from_json,
    status_to_json,
)
from cairn.meta.region import slot_bound
from cairn.placement.model import PlacementRules, RangeRule

ids = st.integers(min_value=1, max_value=2**40)
counts = st.integers(min_value=0, max_value=2**40)
texts = st.text(max_size=20)
labels = st.text(min_size=1, max_size=10)
maybe = st.none() | counts

range_rules = st.builds(
    RangeRule, st.binary(max_size=4), st.binary(max_size=4), st.integers(1, 9), labels, texts
)
rules = st.builds(
    PlacementRules, st.integers(1, 9), labels, st.lists(range_rules, max_size=3).map(tuple)
)
statuses = st.builds(
    StatusView,
    texts,
    ids,
    st.booleans(),
    st.builds(NodeCounts, counts, counts, counts, counts),
    counts,
    counts,
    st.sampled_from(Health),
    st.lists(texts, max_size=3).map(tuple),
    counts,
    counts,
    counts,
    st.none() | rules,
)
nodes = st.builds(
    NodeView,
    ids,
    st.sampled_from(NodeStatus),
    st.none() | texts,
    st.none() | texts,
    st.dictionaries(texts, texts, max_size=3).map(lambda d: tuple(sorted(d.items()))),
    counts,
    counts,
    maybe,
    maybe,
    maybe,
)
peers = st.builds(PeerView, ids, ids, st.sampled_from(["voter", "learner"]))


@st.composite
def regions(draw: st.DrawFn) -> RegionView:
    bounds = sorted(
        draw(st.lists(st.binary(min_size=1, max_size=5), min_size=2, max_size=2, unique=True))
    )
    start = draw(st.sampled_from([b"", bounds[0]]))
    end = draw(st.sampled_from([b"", bounds[1]]))
    return RegionView(
        draw(ids),
        start,
        end,
        draw(ids),
        draw(ids),
        tuple(draw(st.lists(peers, max_size=4))),
        draw(st.none() | ids),
        draw(st.sampled_from(Health)),
        draw(maybe),
        draw(maybe),
        draw(st.none() | texts),
    )


events = st.builds(
    EventView, ids, counts, texts, texts, st.none() | ids, st.none() | ids, st.none() | ids
)
pages = st.builds(EventPage, st.lists(events, max_size=4).map(tuple), counts, st.booleans())


def wire(doc: dict[str, Any]) -> Any:
    """`doc` as a client receives it: through JSON text."""
    return json.loads(json.dumps(doc))


@given(statuses)
def test_status_round_trip(view: StatusView) -> None:
    assert status_from_json(wire(status_to_json(view))) == view


@given(nodes)
def test_node_round_trip(view: NodeView) -> None:
    assert node_from_json(wire(node_to_json(view))) == view


@given(regions())
def test_region_round_trip(view: RegionView) -> None:
    assert region_from_json(wire(region_to_json(view))) == view


@given(pages)
def test_event_page_round_trip(page: EventPage) -> None:
    assert event_page_from_json(wire(event_page_to_json(page))) == page


@given(rules)
def test_rules_round_trip(value: PlacementRules) -> None:
    assert rules_from_json(wire(rules_to_json(value))) == value


def test_region_json_shows_slots_and_a_readable_range() -> None:
    view = RegionView(3, slot_bound(100), slot_bound(200) + b"k", 2, 5, (), None, Health.OK)
    doc = region_to_json(view)
    assert doc["slots"] == [100, 200]
    assert doc["range"] == "slot 100 .. slot 200 key b'k'"
    assert doc["epoch"] == {"version": 2, "conf_ver": 5}
    whole = region_to_json(RegionView(1, b"", b"", 1, 1, (), 1, Health.OK))
    assert whole["slots"] == [0, 16383] and whole["range"] == "start .. end"


def test_a_region_inside_one_slot_owns_no_slot() -> None:
    inside = RegionView(4, slot_bound(7) + b"a", slot_bound(7) + b"m", 1, 1, (), None, Health.OK)
    assert not inside.slots()
    assert region_to_json(inside)["slots"] is None
    assert describe_slots(inside.slots()) == "-"


def test_describe_bound_and_slots() -> None:
    assert describe_bound(b"") == "start"
    assert describe_bound(b"", end=True) == "end"
    assert describe_bound(slot_bound(42)) == "slot 42"
    assert describe_slots(range(5, 6)) == "5"
    assert describe_slots(range(0, 8192)) == "0-8191"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"replicas": "3"}, "replicas: expected an integer"),
        ({"replicas": True}, "replicas: expected an integer"),
        ({}, "replicas: missing"),
        ({"replicas": 3, "location_label": 5}, "location_label: expected str"),
        ({"replicas": 3, "ranges": {}}, "ranges: expected list"),
        (
            {"replicas": 3, "ranges": [{"start": "zz", "end": "", "replicas": 1}]},
            "start: 'zz' is not hex",
        ),
        ({"replicas": 3, "ranges": [{"start": "00", "end": ""}]}, "replicas: missing"),
        ([], "expected an object"),
        ({"replicas": 3, "location_label": ""}, "location_label: must not be empty"),
    ],
)
def test_malformed_rules_are_refused_with_the_reason(doc: Any, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        rules_from_json(doc)


def test_rules_defaults_when_left_out() -> None:
    assert rules_from_json({"replicas": 5}) == PlacementRules(5, "zone", ())


def test_unknown_enum_values_and_empty_ranges_are_refused() -> None:
    node = node_to_json(NodeView(1, NodeStatus.UP, None, None, (), 0, 0, None))
    with pytest.raises(SchemaError, match="status: unknown value 'sleeping'"):
        node_from_json({**node, "status": "sleeping"})
    region = region_to_json(RegionView(1, b"", b"", 1, 1, (), None, Health.OK))
    with pytest.raises(SchemaError, match="not before end"):
        region_from_json({**region, "start": "10", "end": "05"})
    with pytest.raises(SchemaError, match="role"):
        region_from_json({**region, "peers": [{"id": 1, "node_id": 1, "role": "boss"}]})


def test_extra_keys_from_a_newer_server_are_ignored() -> None:
    node = node_to_json(NodeView(2, NodeStatus.DOWN, "a:1", "b:2", (("zone", "x"),), 1, 0, 5))
    assert node_from_json({**node, "something_new": [1, 2]}).id == 2
