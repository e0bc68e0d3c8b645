"""The dashboard without a browser: the history ring's arithmetic, and what the admin
server answers for the page, its static files, `/v1/session` and `/v1/history` (issue 15).
The browser test is `test_dashboard_browser.py`."""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import pytest
from admin_support import ADMIN_TOKEN, READ_TOKEN, http, sample_driver, write_test_tokens
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
from cairn.runtime.command_stats import Histogram


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
