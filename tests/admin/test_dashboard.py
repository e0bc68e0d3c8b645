"""The dashboard without a browser: the history ring's arithmetic, and what the admin
server answers for the page, its static files, `/v1/session` and `/v1/history` (issue 15).
The browser test is `test_dashboard_browser.py`."""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from admin_support import (
    ADMIN_TOKEN,
    READ_TOKEN,
    StaticSource,
    http,
    sample_driver,
    static_topology,
    write_test_tokens,
)
from admin_support import placement_source as make_source

from cairn.admin import AdminServer
from cairn.admin.access import Access
from cairn.admin.dashboard import STATIC_FILES
from cairn.admin.history import (
    DiskUse,
    History,
    HistoryFeed,
    HistorySettings,
    Reading,
    Sample,
    disk_use,
)
from cairn.admin.source import LeaderElsewhereError
from cairn.admin.views import ActionResult, EventPage
from cairn.runtime.admin_peer import AdminPeer, PeerUnavailableError
from cairn.runtime.command_stats import Histogram
from cairn.runtime.frames import FrameDecoder, FrameError, FrameKind, encode_frame


def reading(t: float, commands: int, latency_ns: list[int], applied: int, lag: int) -> Reading:
    """A reading at `t` s whose histogram holds `latency_ns` (cumulative)."""
    histogram = Histogram()
    for ns in latency_ns:
        histogram.add(ns)
    return Reading(
        monotonic_s=t,
        wall_ms=int(t * 1000),
        commands=commands,
        latency=dict(histogram.counts),
        applied={7: applied},
        lag={1: 0, 2: lag},
        rss_bytes=1 << 20,
        disk=DiskUse(4096, 1 << 30, 1 << 32),
    )


# -- the history ring -------------------------------------------------------------------


def test_a_sample_is_the_rates_and_percentiles_of_its_interval() -> None:
    before = reading(10.0, 100, [1_000_000] * 100, 50, 0)
    after = reading(12.0, 300, [1_000_000] * 100 + [2_000] * 200, 250, 4)
    sample = Sample.between(before, after)
    assert sample.ops_per_s == 100.0
    assert sample.region_writes_per_s == {7: 100.0}
    p50, p99, p999 = sample.latency_us
    # only the interval's 2 us calls count, not the earlier 1 ms ones
    assert p50 is not None and 1.9 <= p50 <= 2.1
    assert p99 is not None and p999 is not None and p99 <= p999 < 3
    assert sample.lag == {1: 0, 2: 4}
    doc = sample.to_json()
    assert doc["latency_us"].keys() == {"p50", "p99", "p99.9"}
    assert doc["commit_lag"] == {"1": 0, "2": 4} and "region_writes_per_s" not in doc
    assert doc["disk"] == {"data": 4096, "free": 1 << 30, "total": 1 << 32}
    assert doc["rss_bytes"] == 1 << 20


def test_counters_that_went_backwards_restart_from_zero() -> None:
    before = reading(1.0, 1000, [5_000] * 50, 900, 0)
    after = reading(2.0, 30, [9_000] * 3, 20, 0)  # CONFIG RESETSTAT, a replica recreated
    sample = Sample.between(before, after)
    assert sample.ops_per_s == 30 and sample.region_writes_per_s == {7: 20}
    assert sample.latency_us[0] is not None and 8.9 <= sample.latency_us[0] <= 9.1


def test_an_interval_without_calls_has_no_percentiles() -> None:
    same = reading(1.0, 5, [3_000] * 5, 1, 0)
    later = reading(2.0, 5, [3_000] * 5, 1, 0)
    assert Sample.between(same, later).latency_us == (None, None, None)
    assert Sample.between(same, later).to_json()["latency_us"]["p99"] is None


def test_the_ring_keeps_the_newest_samples_only() -> None:
    history = History(3, HistorySettings(interval_s=1, capacity=4))
    assert history.add(reading(0, 0, [], 0, 0)) is None
    for t in range(1, 10):
        assert history.add(reading(t, t * 10, [], t, 0)) is not None
    doc = history.to_json()
    assert [s["time_ms"] for s in doc["samples"]] == [6000, 7000, 8000, 9000]
    assert doc["region_writes_per_s"] == {"7": 1.0}  # the newest only, not per sample
    assert doc["node_id"] == 3 and doc["capacity"] == 4 and doc["interval_ms"] == 1000
    assert [s["time_ms"] for s in history.to_json(since_ms=7000)["samples"]] == [8000, 9000]


def test_disk_use_counts_the_blocks_under_the_data_directory(tmp_path: Path) -> None:
    (tmp_path / "region-1").mkdir()
    (tmp_path / "region-1" / "data.mdb").write_bytes(b"x" * 100_000)
    (tmp_path / "small").write_bytes(b"y")
    use = disk_use(tmp_path)
    assert use is not None and 100_000 <= use.data_bytes <= 120_000
    assert 0 < use.free_bytes <= use.total_bytes
    assert disk_use(tmp_path / "missing") is None


@pytest.mark.parametrize("interval, capacity", [(0, 10), (61, 10), (1, 1), (1, 3601)])
def test_settings_out_of_range_are_refused(interval: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        HistorySettings(interval_s=interval, capacity=capacity)


# -- served -----------------------------------------------------------------------------


@contextmanager
def dashboard_server() -> Iterator[str]:
    """An admin server over the sample driver with a history fed every 50 ms by a fake
    node whose counters grow; yields its base URL."""
    ticks = count()

    def read() -> Reading:
        t = next(ticks)
        return reading(time.monotonic(), t * 10, [2_000] * t, t * 2, t % 3)

    feed = HistoryFeed(History(1, HistorySettings(interval_s=0.05, capacity=50)), read)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        access = Access.open(write_test_tokens(Path(tmp) / "tokens.json"))
        server = AdminServer(
            make_source(sample_driver()), "127.0.0.1", 0, access=access, history=feed
        )
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
            host, port = server.address
            yield f"http://{host}:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with dashboard_server() as base:
        yield base


def test_the_page_and_its_files_need_no_token_and_hold_no_data(url: str) -> None:
    status, ctype, page = http("GET", url + "/dashboard", token=None)
    assert status == 200 and ctype.startswith("text/html")
    linked = set(re.findall(r"/dashboard/static/([\w.]+)\?v=", page))
    assert linked == set(STATIC_FILES)
    assert "<script>" not in page and "cluster-test" not in page  # no inline script, no data
    for name, media in STATIC_FILES.items():
        status, ctype, body = http("GET", f"{url}/dashboard/static/{name}", token=None)
        assert status == 200 and ctype.startswith(media) and len(body) > 500


def test_the_page_is_sent_with_a_strict_content_security_policy(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url + "/dashboard", timeout=5) as response:
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_only_the_listed_files_are_public(url: str) -> None:
    for path in ("/dashboard/static/../server.py", "/dashboard/static/x.js", "/dashboard/x"):
        assert http("GET", url + path, token=None)[0] == 401
    assert http("GET", url + "/dashboard/static/x.js")[0] == 404
    assert http("POST", url + "/dashboard", b"{}", token=None)[0] == 401
    assert http("GET", url + "/dashboard", headers={"Origin": "http://evil.example"})[0] == 200


def test_the_session_names_the_token_and_its_role(url: str) -> None:
    status, _, doc = http("GET", url + "/v1/session", token=READ_TOKEN)
    assert status == 200 and doc == {"token_id": "rd", "name": "test reader", "role": "read"}
    assert http("GET", url + "/v1/session")[2]["role"] == "admin"
    assert http("GET", url + "/v1/session", token=None)[0] == 401
    assert http("GET", url + "/v1/session", token=ADMIN_TOKEN + "x")[0] == 401


def test_the_history_is_sampled_while_the_server_runs(url: str) -> None:
    deadline = time.monotonic() + 5
    samples: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(samples) < 3:
        status, _, doc = http("GET", url + "/v1/history", token=READ_TOKEN)
        assert status == 200
        samples = doc["samples"]
        time.sleep(0.05)
    assert len(samples) >= 3 and doc["node_id"] == 1 and doc["percentiles"][0] == "p50"
    last = samples[-1]
    assert last["ops_per_s"] > 0 and doc["region_writes_per_s"]["7"] > 0
    newest = last["time_ms"]
    later = http("GET", f"{url}/v1/history?since_ms={newest}", token=READ_TOKEN)[2]
    assert all(s["time_ms"] > newest for s in later["samples"])  # type: ignore[operator]


@pytest.mark.parametrize("query", ["since_ms=x", "since_ms=-1", f"since_ms={2**63}"])
def test_a_bad_history_query_is_400(url: str, query: str) -> None:
    status, _, doc = http("GET", f"{url}/v1/history?{query}")
    assert status == 400 and doc["error"]["code"] == "bad-request"


def test_the_history_needs_a_token(url: str) -> None:
    assert http("GET", url + "/v1/history", token=None)[0] == 401


def test_a_server_without_a_feed_has_no_history() -> None:
    from admin_support import served

    with served(make_source(sample_driver())) as address:
        assert http("GET", f"http://{address}/v1/history")[0] == 404
        assert http("GET", f"http://{address}/dashboard", token=None)[0] == 200


# -- every node answers: views asked of the placement leader, histories of each node -----


class NotLeader(StaticSource):
    """The source of a node that does not lead the placement group: node 1 does."""

    node_id = 2

    def __init__(self) -> None:
        super().__init__(static_topology())
        self.fail = LeaderElsewhereError(1, "node 1 (127.0.0.1:7001) leads the placement group")

    async def events(self, since: int, limit: int) -> EventPage:
        raise LeaderElsewhereError(1, "node 1 leads the placement group")

    async def drain_node(self, node_id: int, reason: str) -> ActionResult:
        raise LeaderElsewhereError(1, "node 1 leads the placement group")


class Links:
    """Peer links between `AdminPeer`s of one loop: each frame is encoded, decoded and
    dispatched as the TCP transport does; a node absent from `peers` is not connected."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.peers: dict[int, AdminPeer] = {}

    def sender(self, frm: int) -> Callable[[int, list[Any]], bool]:
        def send(to: int, payload: list[Any]) -> bool:
            if to not in self.peers:
                return False
            self.loop.call_soon(self._deliver, frm, to, encode_frame(payload))
            return True

        return send

    def _deliver(self, frm: int, to: int, data: bytes) -> None:
        decoder = FrameDecoder(1 << 24)
        decoder.feed(data)
        (frame,) = decoder.frames()
        peer = self.peers[to]
        handler = peer.on_request if frame[0] == FrameKind.ADMIN else peer.on_reply
        handler(frm, frame)


def history_feed(node_id: int) -> HistoryFeed:
    ticks = count()

    def read() -> Reading:
        t = next(ticks)
        return reading(time.monotonic(), t * 10, [2_000] * t, t * 2, t % 3)

    return HistoryFeed(History(node_id, HistorySettings(interval_s=0.05, capacity=50)), read)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[str, str, Links]]:
    """Node 1 (the placement leader, over the sample driver) and node 2 (not the leader),
    linked; yields their base URLs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    links = Links(loop)
    sources: dict[int, Any] = {1: make_source(sample_driver()), 2: NotLeader()}
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        access = Access.open(write_test_tokens(Path(tmp) / "tokens.json"))
        for n in (1, 2):
            links.peers[n] = AdminPeer(links.sender(n), timeout=1.0)
            server = AdminServer(
                sources[n], "127.0.0.1", 0, access=access, history=history_feed(n),
                peer=links.peers[n],
            )
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
            servers.append(server)
        try:
            first, second = (f"http://{s.address[0]}:{s.address[1]}" for s in servers)
            yield first, second, links
        finally:
            for server in servers:
                asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def test_a_view_asked_of_a_node_that_does_not_lead_is_the_leaders(
    pair: tuple[str, str, Links],
) -> None:
    leader, other, _ = pair
    for path in ("/v1/status", "/v1/nodes", "/v1/regions", "/v1/nodes/3", "/v1/regions/2",
                 "/v1/events?since=0&limit=5"):
        direct = http("GET", leader + path, token=READ_TOKEN)
        asked = http("GET", other + path, token=READ_TOKEN)
        assert asked[0] == 200 and asked == direct, path
    assert http("GET", other + "/v1/status")[2]["answered_by"] == 1
    # the leader's refusals come back as they are
    assert http("GET", other + "/v1/nodes/99")[:2] == (404, "application/json; charset=utf-8")
    assert http("GET", other + "/v1/nodes/99")[2] == http("GET", leader + "/v1/nodes/99")[2]
    # the caller's token is checked where it called
    assert http("GET", other + "/v1/status", token=None)[0] == 401


def test_an_action_asked_of_a_node_that_does_not_lead_is_done_by_the_leader(
    pair: tuple[str, str, Links],
) -> None:
    leader, other, _ = pair
    body = b'{"reason": "test"}'
    assert http("POST", other + "/v1/nodes/4/drain", body, token=READ_TOKEN)[0] == 403
    status, _, doc = http("POST", other + "/v1/nodes/4/drain", body)
    assert status == 202 and doc["ok"] is True
    assert http("GET", leader + "/v1/nodes/4")[2]["status"] == "draining"


def test_every_nodes_history_is_asked_of_it(pair: tuple[str, str, Links]) -> None:
    leader, other, _ = pair
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        doc = http("GET", other + "/v1/history?node=1", token=READ_TOKEN)[2]
        if doc["samples"]:
            break
        time.sleep(0.05)
    assert doc["node_id"] == 1 and doc["samples"]
    assert http("GET", other + "/v1/history")[2]["node_id"] == 2
    assert http("GET", leader + "/v1/history?node=2")[2]["node_id"] == 2
    status, _, doc = http("GET", other + "/v1/history?node=3")
    assert status == 503 and "node 3 is not connected" in doc["error"]["message"]
    assert http("GET", other + "/v1/history?node=0")[0] == 400


def test_the_histories_of_several_nodes_come_in_one_answer(pair: tuple[str, str, Links]) -> None:
    _, other, _ = pair
    status, _, doc = http("GET", other + "/v1/histories?nodes=1,2,3,2", token=READ_TOKEN)
    assert status == 200
    assert sorted(h["node_id"] for h in doc["histories"]) == [1, 2]
    assert doc["unanswered"] == {"3": "asking node 3: node 3 is not connected to this node"}
    for query in ("", "nodes=", "nodes=1,x", "nodes=0", "nodes=" + ",".join(["1"] * 65)):
        assert http("GET", other + "/v1/histories?" + query)[0] == 400, query


def test_a_node_asked_for_a_view_it_cannot_serve_does_not_ask_further(
    pair: tuple[str, str, Links],
) -> None:
    _, _, links = pair
    ask = links.peers[1].ask(2, "status", [])
    status, body = asyncio.run_coroutine_threadsafe(ask, links.loop).result(5)
    assert status == 503 and b"leads the placement group" in body
    ask = links.peers[1].ask(2, "no-such-view", [])
    assert asyncio.run_coroutine_threadsafe(ask, links.loop).result(5)[0] == 404
    ask = links.peers[1].ask(2, "events", [0, 10**6])  # over the limit: refused there too
    assert asyncio.run_coroutine_threadsafe(ask, links.loop).result(5)[0] == 400


def test_a_peer_that_does_not_answer_times_out() -> None:
    async def run() -> None:
        peer = AdminPeer(lambda to, payload: True, timeout=0.05)  # sent, never answered
        with pytest.raises(PeerUnavailableError, match="did not answer within"):
            await peer.ask(2, "status", [])
        assert not peer._pending

    asyncio.run(run())


@pytest.mark.parametrize(
    "frame",
    [
        [FrameKind.ADMIN, 1, "", []],
        [FrameKind.ADMIN, 1, "x" * 33, []],
        [FrameKind.ADMIN, 1, "status", [1, 2, 3, 4, 5]],
        [FrameKind.ADMIN, 1, "drain", [-1]],
        [FrameKind.ADMIN, 1, "drain", [1.5]],
        [FrameKind.ADMIN, 1, "placement", ["x" * (64 << 10 + 1)]],
        [FrameKind.ADMIN, -1, "status", []],
        [FrameKind.ADMIN, 1, "status"],
        [FrameKind.ADMIN_REPLY, 1, 99, b"{}"],
        [FrameKind.ADMIN_REPLY, 1, 200, "{}"],
        [FrameKind.ADMIN_REPLY, 1, 200, b"x" * ((16 << 20) + 1)],
    ],
)
def test_malformed_admin_frames_are_refused(frame: list[Any]) -> None:
    peer = AdminPeer(lambda to, payload: True)
    handler = peer.on_request if frame[0] == FrameKind.ADMIN else peer.on_reply
    with pytest.raises(FrameError):
        handler(2, frame)
