"""The admin HTTP API on a real aiohttp server (127.0.0.1, port 0), over real sources."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from admin_support import (
    ADMIN_TOKEN,
    T0,
    StaticSource,
    http,
    placement_source,
    sample_driver,
    served,
    static_topology,
)
from prometheus_client.parser import text_string_to_metric_families

from cairn.admin.source import SourceUnavailableError
from cairn.meta.region import slot_bound
from cairn.placement import PlacementDriver
from cairn.placement.model import EventKind, NodeState, RangeRule


@pytest.fixture
def driver() -> PlacementDriver:
    return sample_driver()


@pytest.fixture
def url(driver: PlacementDriver) -> Iterator[str]:
    with served(placement_source(driver)) as address:
        yield f"http://{address}"


@pytest.fixture
def static() -> StaticSource:
    return StaticSource(static_topology())


@pytest.fixture
def static_url(static: StaticSource) -> Iterator[str]:
    with served(static) as address:
        yield f"http://{address}"


def test_status_summarises_the_cluster(url: str) -> None:
    status, ctype, doc = http("GET", url + "/v1/status")
    assert status == 200 and ctype.startswith("application/json")
    assert doc["cluster_id"] == "test-cluster" and doc["answered_by"] == 1
    assert doc["placement_running"] is True
    assert doc["nodes"] == {"total": 4, "up": 4, "down": 0, "draining": 0, "removed": 0}
    assert doc["regions"] == 2 and doc["regions_with_leader"] == 2
    assert doc["health"] == "ok" and doc["problems"] == []
    assert doc["last_event_seq"] == 6
    assert doc["rules"] == {"replicas": 3, "location_label": "zone", "ranges": []}


def test_nodes_list_states_addresses_labels_and_counts(url: str) -> None:
    status, _, doc = http("GET", url + "/v1/nodes")
    assert status == 200
    rows = {n["id"]: n for n in doc["nodes"]}
    assert sorted(rows) == [1, 2, 3, 4]
    one = rows[1]
    assert one["status"] == "up" and one["labels"] == {"zone": "a"}
    assert one["client_address"] == "10.0.0.1:7001" and one["peer_address"] == "10.0.0.1:17001"
    assert (one["regions"], one["leaders"]) == (2, 1)
    assert (rows[4]["regions"], rows[4]["leaders"]) == (1, 0)
    assert one["silent_ms"] == 0 and one["capacity_bytes"] is None
    status, _, single = http("GET", url + "/v1/nodes/3")
    assert status == 200 and single == rows[3]


def test_regions_list_ranges_peers_leaders_and_sizes(url: str) -> None:
    status, _, doc = http("GET", url + "/v1/regions")
    assert status == 200
    first, second = doc["regions"]
    assert first["slots"] == [0, 8191] and second["slots"] == [8192, 16383]
    assert first["start"] == "" and first["end"] == slot_bound(8192).hex()
    assert first["leader"] == 1 and second["leader"] == 2
    assert first["approximate_keys"] == 1000 and first["approximate_size"] == 1 << 20
    roles = {(p["node_id"], p["role"]) for p in second["peers"]}
    assert roles == {(2, "voter"), (3, "voter"), (4, "voter"), (1, "learner")}
    assert {p["id"] for p in first["peers"]} == {101, 102, 103}
    assert first["health"] == "ok" and first["epoch"] == {"version": 1, "conf_ver": 1}
    assert http("GET", url + "/v1/regions/2")[2] == second


def test_events_page_since_and_limit(url: str) -> None:
    _, _, page = http("GET", url + "/v1/events")
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4, 5, 6]
    assert page["last_seq"] == 6 and page["placement_running"] is True
    assert page["events"][0]["kind"] == "node-added" and page["events"][0]["node_id"] == 1
    _, _, newest = http("GET", url + "/v1/events?since=2&limit=2")
    assert [e["seq"] for e in newest["events"]] == [5, 6]
    _, _, none = http("GET", url + "/v1/events?since=6")
    assert none["events"] == [] and none["last_seq"] == 6


def test_drain_marks_the_node_and_records_why(url: str, driver: PlacementDriver) -> None:
    body = json.dumps({"reason": "disk replacement"}).encode()
    status, _, doc = http("POST", url + "/v1/nodes/3/drain", body)
    assert status == 202 and doc["ok"] is True and "node 3" in doc["message"]
    assert next(n for n in driver.nodes() if n.id == 3).state is NodeState.DRAINING
    event = driver.events(6)[0]
    assert event.kind is EventKind.NODE_DRAINING and event.node_id == 3
    assert event.reason == "disk replacement" and event.time_ms == T0 + 500
    _, _, after = http("GET", url + "/v1/status")
    assert after["nodes"]["draining"] == 1 and after["last_event_seq"] == 7


def test_drain_without_a_body_gives_a_default_reason(url: str, driver: PlacementDriver) -> None:
    assert http("POST", url + "/v1/nodes/2/drain")[0] == 202
    assert "admin API" in driver.events(6)[0].reason


def test_placement_declares_rules(url: str, driver: PlacementDriver) -> None:
    rules = {
        "replicas": 5,
        "location_label": "rack",
        "ranges": [{"start": "", "end": slot_bound(100).hex(), "replicas": 3, "name": "hot"}],
    }
    status, _, doc = http("POST", url + "/v1/placement", json.dumps(rules).encode())
    assert status == 200 and doc["ok"] is True and "5 replicas" in doc["message"]
    declared = driver.status().rules
    assert (declared.replicas, declared.location_label) == (5, "rack")
    assert declared.ranges == (RangeRule(b"", slot_bound(100), 3, "zone", "hot"),)
    assert http("GET", url + "/v1/status")[2]["rules"]["replicas"] == 5


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "a JSON body is required"),
        (b"{not json", "not valid JSON"),
        (b'{"replicas": 0}', "replica counts must be at least 1"),
        (b'{"replicas": "three"}', "replicas: expected an integer"),
        (
            b'{"replicas": 3, "ranges": [{"start": "0010", "end": "0005", "replicas": 1}]}',
            "empty range",
        ),
        (
            b'{"replicas": 3, "ranges": [{"start": "", "end": "0010", "replicas": 1},'
            b' {"start": "0005", "end": "", "replicas": 1}]}',
            "overlap",
        ),
    ],
)
def test_bad_placement_input_is_400_with_the_reason(
    url: str, driver: PlacementDriver, body: bytes, reason: str
) -> None:
    status, _, doc = http("POST", url + "/v1/placement", body)
    assert status == 400
    assert doc["error"]["status"] == 400 and doc["error"]["code"] == "bad-request"
    assert reason in doc["error"]["message"]
    assert driver.status().rules.replicas == 3


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nodes/99", 404, "not-found"),
        ("POST", "/v1/nodes/99/drain", 404, "not-found"),
        ("GET", "/v1/regions/42", 404, "not-found"),
        ("GET", "/v1/nodes/x", 400, "bad-request"),
        ("GET", "/v1/nodes/0", 400, "bad-request"),
        ("GET", "/v1/events?since=-1", 400, "bad-request"),
        ("GET", "/v1/events?limit=0", 400, "bad-request"),
        ("GET", "/v1/events?limit=lots", 400, "bad-request"),
        ("GET", "/v1/nowhere", 404, "not-found"),
        ("DELETE", "/v1/status", 405, "method-not-allowed"),
    ],
)
def test_errors_are_json_with_a_status(
    url: str, method: str, path: str, status: int, code: str
) -> None:
    got, ctype, doc = http(method, url + path)
    assert got == status and ctype.startswith("application/json")
    assert doc["error"]["status"] == status and doc["error"]["code"] == code
    assert doc["error"]["message"]


def test_a_drain_body_that_is_not_an_object_is_400(url: str) -> None:
    status, _, doc = http("POST", url + "/v1/nodes/1/drain", b'{"reason": 7}')
    assert status == 400 and "reason" in doc["error"]["message"]


def test_an_oversized_body_is_refused(url: str) -> None:
    status, _, doc = http("POST", url + "/v1/placement", b" " * (128 << 10))
    assert status == 413 and doc["error"]["code"] == "too-large"


def test_index_lists_the_endpoints(url: str) -> None:
    status, _, doc = http("GET", url + "/v1")
    assert status == 200 and doc["api"] == "v1"
    assert "POST /v1/nodes/{id}/drain" in doc["endpoints"]


def test_metrics_in_prometheus_format(url: str) -> None:
    status, ctype, text = http("GET", url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    node = (("node", "1"),)
    r1 = (("node", "1"), ("region", "1"))
    assert samples[("cairn_clients_connected", node)] == 3
    assert samples[("cairn_connections_received_total", node)] == 10
    assert samples[("cairn_raft_term", r1)] == 7
    assert samples[("cairn_raft_commit_index", r1)] == 120
    assert samples[("cairn_raft_applied_index", r1)] == 118
    assert samples[("cairn_raft_lease_reads_total", r1)] == 40
    assert samples[("cairn_raft_proposals_total", r1)] == 99
    assert ("cairn_raft_proposals_total", (("node", "1"), ("region", "2"))) not in samples
    assert samples[("cairn_raft_role", (*r1, ("role", "leader")))] == 1
    assert samples[("cairn_raft_role", (*r1, ("role", "follower")))] == 0
    assert samples[("cairn_raft_role", (("node", "1"), ("region", "2"), ("role", "follower")))] == 1
    assert samples[("cairn_commands_total", (("command", "get"), ("node", "1")))] == 5


def test_without_a_placement_driver_actions_are_501(static_url: str) -> None:
    status, _, doc = http("POST", static_url + "/v1/nodes/2/drain")
    assert status == 501 and doc["error"]["code"] == "placement-not-running"
    assert "placement driver is not running" in doc["error"]["message"]
    status, _, doc = http("POST", static_url + "/v1/placement", b'{"replicas": 3}')
    assert status == 501


def test_without_a_placement_driver_bad_input_is_still_400(static_url: str) -> None:
    assert http("POST", static_url + "/v1/placement", b'{"replicas": -1}')[0] == 400


def test_without_a_placement_driver_views_show_the_static_layout(static_url: str) -> None:
    _, _, status = http("GET", static_url + "/v1/status")
    assert status["placement_running"] is False and status["rules"] is None
    assert status["health"] == "ok" and status["regions"] == 1
    _, _, events = http("GET", static_url + "/v1/events")
    assert events == {"events": [], "last_seq": 0, "placement_running": False}


def test_health_reports_down_nodes_and_lost_quorums() -> None:
    with served(StaticSource(static_topology(down=(3,)))) as address:
        doc = http("GET", f"http://{address}/v1/status")[2]
        assert doc["health"] == "degraded"
        assert doc["problems"] == [
            "region(s) 1 have a replica on a node down or removed",
            "node(s) 3 down",
        ]
    with served(StaticSource(static_topology(down=(2, 3), leader=None))) as address:
        doc = http("GET", f"http://{address}/v1/status")[2]
        assert doc["health"] == "unavailable"
        assert "region(s) 1 lost their quorum" in doc["problems"]
        region = http("GET", f"http://{address}/v1/regions")[2]["regions"][0]
        assert region["health"] == "unavailable" and region["leader"] is None


def test_a_failing_source_is_500_without_internals(static: StaticSource, static_url: str) -> None:
    static.fail = RuntimeError("secret detail")
    status, _, doc = http("GET", static_url + "/v1/nodes")
    assert status == 500 and doc["error"]["code"] == "internal"
    assert "secret" not in doc["error"]["message"]


def test_a_source_not_ready_is_503(static: StaticSource, static_url: str) -> None:
    static.fail = SourceUnavailableError("the node is starting")
    status, _, doc = http("GET", static_url + "/v1/status")
    assert status == 503 and doc["error"]["message"] == "the node is starting"


def test_a_token_protects_every_endpoint(driver: PlacementDriver) -> None:
    with served(placement_source(driver)) as address:
        base = f"http://{address}"
        status, _, doc = http("GET", base + "/v1/status", token=None)
        assert status == 401 and doc["error"]["code"] == "unauthorized"
        assert http("GET", base + "/metrics", token=None)[0] == 401
        assert http("POST", base + "/v1/nodes/1/drain", token="nope")[0] == 401
        assert http("GET", base + "/v1/status", token=ADMIN_TOKEN)[0] == 200
    assert all(n.state is NodeState.UP for n in driver.nodes())
