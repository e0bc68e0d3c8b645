"""MONITOR's line format and redaction, CLIENT REPLY's modes, and MEMORY USAGE's
estimate from a key's records (no cluster: the live comparisons with redis-server are in
test_redis_exporter.py)."""

from __future__ import annotations

from store_harness import FakeClock, MachineClient

from cairn.resp.reply import Integer
from cairn.runtime.client_introspection import _client_reply, reply_silenced
from cairn.runtime.memory_report import EMPTY, NO_ISSUE, doctor_report, is_node_level
from cairn.runtime.monitor import Monitors, monitor_line, quote
from cairn.runtime.server import ClientState
from cairn.store import COMMANDS
from cairn.store.layout import decode_meta, element_prefix, encode_meta, meta_key


def test_quote_is_redis_sdscatrepr() -> None:
    raw = b'a "b"' + bytes([92, 10, 13, 9, 7, 8, 1, 0xC3, 0xA9]) + b"~"
    assert quote(raw) == rb'"a \"b\"\\\n\r\t\a\b\x01\xc3\xa9~"'


def test_monitor_line_and_redaction() -> None:
    line = monitor_line(1339518083.107412, "127.0.0.1:60866", "keys", [b"keys", b"*"])
    assert line == b'+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"\r\n'
    auth = monitor_line(1.5, "a:1", "auth", [b"AUTH", b"user", b"secret"])
    assert auth == b'+1.500000 [0 a:1] "AUTH" "(redacted)" "(redacted)"\r\n'
    hello = monitor_line(
        2.0, "a:1", "hello", [b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]
    )
    assert b'"AUTH" "(redacted)" "(redacted)" "SETNAME" "n"' in hello
    assert b"secret" not in auth


def test_client_reply_modes() -> None:
    state = ClientState(id=1, addr="a", laddr="b", created=0.0)
    silenced = []
    for mode in (b"skip", None, None, b"off", None, b"on", None, b"skip", b"skip", None, None):
        if mode is not None:
            _client_reply(state, mode)
        silenced.append(reply_silenced(state))
    # SKIP hides itself and the next; OFF hides itself and all after; ON answers again;
    # SKIP SKIP hides both and the one after the second
    assert silenced == [True, True, False, True, True, False, False, True, True, True, False]


def test_memory_usage_counts_the_key_records() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "s", "v" * 50)
    size = client.call("MEMORY", "USAGE", "s")
    assert isinstance(size, Integer) and size.value > 50
    client.call("HSET", "h", *[x for i in range(100) for x in (f"f{i:03}", "x" * 10)])
    exact = client.call("MEMORY", "USAGE", "h", "SAMPLES", "0")
    record = len(element_prefix(b"h", 0)) + 4 + 10
    assert isinstance(exact, Integer)
    assert exact.value == len(meta_key(b"h")) + 100 * record + _meta_len(client, b"h")
    sampled = client.call("MEMORY", "USAGE", "h")
    assert sampled == exact  # every field record has the same size: the mean is exact


def _meta_len(client: MachineClient, key: bytes) -> int:
    raw = client.machine.keyspace.get(meta_key(key))
    assert raw is not None
    return len(encode_meta(decode_meta(raw)))


def test_memory_doctor_and_routing_choice() -> None:
    assert doctor_report(0) == EMPTY and doctor_report(3) == NO_ISSUE
    assert is_node_level([b"MEMORY", b"STATS"]) and is_node_level([b"MEMORY", b"USAGE"])
    assert not is_node_level([b"MEMORY", b"USAGE", b"k"]) and not is_node_level([b"MEMORY"])


class _Watcher:
    """A monitor connection that never reads: what it was sent piles up."""

    def __init__(self, client_id: int) -> None:
        self.state = ClientState(id=client_id, addr="w", laddr="l", created=0.0)
        self.sent: list[bytes] = []
        self.aborted = False

    def output_backlog(self) -> int:
        return sum(len(line) for line in self.sent)

    def push(self, data: bytes) -> None:
        self.sent.append(data)

    def abort(self) -> None:
        self.aborted = True


def test_a_monitor_that_does_not_read_is_dropped_at_the_limit() -> None:
    monitors = Monitors(COMMANDS, lambda: 1.0, max_backlog=1000)
    slow, gone = _Watcher(1), _Watcher(2)
    monitors.add(slow)  # type: ignore[arg-type]
    monitors.add(gone)  # type: ignore[arg-type]
    gone.state.closing = True
    sender = ClientState(id=3, addr="127.0.0.1:5", laddr="l", created=0.0)
    for _ in range(100):
        monitors.feed(sender, "get", [b"GET", b"k" * 20])
    assert slow.aborted and not monitors.watchers
    assert 0 < slow.output_backlog() <= 1000 and not gone.sent
    assert "monitor" in slow.state.flags
    monitors.feed(sender, "nosuch", [b"NOSUCH"])  # unknown commands are never formatted
