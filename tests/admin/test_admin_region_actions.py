"""The operator request endpoints (`cairn.admin.region_actions`) over a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from admin_support import (
    READ_TOKEN,
    StaticSource,
    http,
    placement_source,
    sample_driver,
    served,
    static_topology,
)

from cairn.placement import PlacementDriver
from cairn.placement.model import NodeAdmin


@pytest.fixture
def driver() -> PlacementDriver:
    return sample_driver()


@pytest.fixture
def url(driver: PlacementDriver) -> Iterator[str]:
    with served(placement_source(driver)) as address:
        yield f"http://{address}"


def post(url: str, path: str, body: object = None, **kw: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    data = None if body is None else json.dumps(body).encode()
    status, _, doc = http("POST", url + path, data, **kw)  # type: ignore[arg-type]
    return status, doc


def test_a_transfer_starts_an_operator_that_can_be_followed(
    url: str, driver: PlacementDriver
) -> None:
    status, doc = post(url, "/v1/regions/1/transfer-leader", {"to": 2, "reason": "test"})
    assert status == 202, doc
    op = doc["operator"]
    assert op["kind"] == "balance-leader" and op["status"] == "running"
    assert op["steps"] == ["transfer-leader to peer 102 on node 2"]
    assert op["reason"] == "requested: test"
    assert [o.id for o in driver.operators()] == [op["id"]]
    status, _, seen = http("GET", f"{url}/v1/operators/{op['id']}", token=READ_TOKEN)
    assert status == 200 and seen["status"] == "running" and seen["region"] == 1
    status, doc = post(url, "/v1/regions/1/split", {})
    assert status == 409 and doc["error"]["code"] == "refused"
    assert f"already under operator #{op['id']}" in doc["error"]["message"]


def test_split_move_and_merge(url: str, driver: PlacementDriver) -> None:
    status, doc = post(url, "/v1/regions/2/merge")
    assert status == 409 and "no learners" in doc["error"]["message"]
    status, doc = post(url, "/v1/regions/1/split", {"slot": 100})
    assert status == 202, doc
    assert "at b'\\x00d'" in doc["operator"]["description"]
    status, doc = post(url, "/v1/regions/2/move", {"from": 4, "to": 1})
    assert status == 409 and "already has a replica on node 1" in doc["error"]["message"]
    status, doc = post(url, "/v1/regions/9/move", {"from": 1, "to": 2})
    assert status == 404 and doc["error"]["message"] == "region 9 is not known"
    assert len(driver.operators()) == 1


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        ("/v1/regions/x/split", {}, "region id 'x' is not an integer"),
        ("/v1/regions/0/split", {}, "region id must be in"),
        ("/v1/regions/1/split", {"slot": 16384}, '"slot" must be in 0..16383'),
        ("/v1/regions/1/split", {"slot": 5, "policy": "size"}, "not both"),
        ("/v1/regions/1/split", {"policy": "random"}, "not both"),
        ("/v1/regions/1/split", [1], "must be a JSON object"),
        ("/v1/regions/1/move", {"to": 2}, '"from" is required'),
        ("/v1/regions/1/move", {"from": "1", "to": 2}, '"from" must be an integer'),
        ("/v1/regions/1/move", {"from": True, "to": 2}, '"from" must be an integer'),
        ("/v1/regions/1/transfer-leader", {"to": 2, "extra": 1}, "unknown field(s): extra"),
        ("/v1/regions/1/transfer-leader", {"to": 2, "reason": "x" * 201}, "longer than 200"),
        ("/v1/regions/1/merge", {"into": -1}, '"into" must be in'),
    ],
)
def test_bad_input_is_a_400(url: str, path: str, body: object, text: str) -> None:
    status, doc = post(url, path, body)
    assert status == 400 and text in doc["error"]["message"], doc


def test_hostile_bodies_are_a_400(url: str) -> None:
    for raw in (b"[" * 20000 + b"]" * 20000, b"{not json", "\u00e9".encode("latin-1")):
        for path in ("/v1/regions/1/split", "/v1/nodes/1/drain", "/v1/placement"):
            status, _, doc = http("POST", url + path, raw)
            assert status == 400, (path, doc)


def test_tokens_are_checked(url: str, driver: PlacementDriver) -> None:
    status, doc = post(url, "/v1/regions/1/transfer-leader", {"to": 2}, token=READ_TOKEN)
    assert status == 403 and doc["error"]["code"] == "forbidden"
    status, doc = post(url, "/v1/regions/1/transfer-leader", {"to": 2}, token=None)
    assert status == 401
    assert http("GET", url + "/v1/operators/1", token=None)[0] == 401
    assert driver.operators() == []


def test_undrain_and_unknown_operators(url: str, driver: PlacementDriver) -> None:
    assert post(url, "/v1/nodes/4/drain", {})[0] == 202
    assert driver.metadata.nodes[4].admin is NodeAdmin.DRAINING
    status, doc = post(url, "/v1/nodes/4/undrain", {"reason": "done"})
    assert status == 200 and "node 4 is active" in doc["message"]
    assert driver.metadata.nodes[4].admin is NodeAdmin.ACTIVE
    assert post(url, "/v1/nodes/9/undrain")[0] == 404
    status, _, doc = http("GET", url + "/v1/operators/77")
    assert status == 404 and "operator 77 is not known" in doc["error"]["message"]


def test_without_a_placement_driver_the_requests_answer_501() -> None:
    with served(StaticSource(static_topology())) as address:
        status, doc = post(f"http://{address}", "/v1/regions/1/split", {})
        assert status == 501 and doc["error"]["code"] == "placement-not-running"
