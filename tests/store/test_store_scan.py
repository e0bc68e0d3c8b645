"""SCAN's guarantee under concurrent mutation: every key present for the whole scan is
returned, whatever is added or removed between calls (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import Array, Bulk

# Few distinct tags so that several keys share a slot and cursors land mid-slot.
_KEYS = st.builds(
    lambda tag, n: (b"{%d}k%d" % (tag, n)) if tag >= 0 else b"k%d" % n,
    st.integers(-1, 3),
    st.integers(0, 40),
)
_ACTIONS = st.lists(
    st.tuples(st.sampled_from(["add", "del", "scan"]), _KEYS, st.integers(1, 12)),
    max_size=60,
)


def _scan_step(client: MachineClient, cursor: bytes, count: int) -> tuple[bytes, list[bytes]]:
    reply = client.call("SCAN", cursor, "COUNT", str(count))
    assert isinstance(reply, Array)
    head, body = reply.items
    assert isinstance(head, Bulk) and isinstance(body, Array)
    return head.value, [item.value for item in body.items if isinstance(item, Bulk)]


@settings(max_examples=150, deadline=None)
@given(initial=st.sets(_KEYS, max_size=40), actions=_ACTIONS, final_count=st.integers(1, 8))
def test_scan_returns_every_key_present_throughout(
    initial: set[bytes], actions: list[tuple[str, bytes, int]], final_count: int
) -> None:
    client = MachineClient(clock=FakeClock())
    for key in sorted(initial):
        client.call("SET", key, "v")
    ever, removed = set(initial), set()
    seen: list[bytes] = []
    cursor, done = b"0", False
    for action, key, count in actions:
        if action == "add":
            client.call("SET", key, "v")
            ever.add(key)
        elif action == "del":
            client.call("DEL", key)
            removed.add(key)
        elif not done:
            cursor, keys = _scan_step(client, cursor, count)
            seen += keys
            done = cursor == b"0"
    calls = 0
    while not done:
        cursor, keys = _scan_step(client, cursor, final_count)
        seen += keys
        done, calls = cursor == b"0", calls + 1
        assert calls <= 200
    assert (initial - removed) <= set(seen)
    assert set(seen) <= ever
    assert len(seen) == len(set(seen)), "a scan over positions never repeats a key"


@settings(max_examples=50, deadline=None)
@given(keys=st.sets(_KEYS, min_size=1, max_size=60), count=st.integers(1, 20))
def test_quiet_scan_returns_each_key_once_in_keys_order(keys: set[bytes], count: int) -> None:
    client = MachineClient(clock=FakeClock())
    client.call("MSET", *[x for k in sorted(keys) for x in (k, b"v")])
    seen, cursor = [], b"0"
    while True:
        cursor, batch = _scan_step(client, cursor, count)
        seen += batch
        if cursor == b"0":
            break
    everything = client.call("KEYS", "*")
    assert isinstance(everything, Array)
    assert seen == [item.value for item in everything.items if isinstance(item, Bulk)]


def test_cursors_stay_small_at_slot_boundaries() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("MSET", *[x for i in range(50) for x in (b"key%d" % i, b"v")])
    cursor, _ = _scan_step(client, b"0", 5)
    assert 0 < int(cursor) < 16384


def test_unknown_cursors_are_accepted() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "a", "v")
    for cursor in (b"1", b"16383", b"16384", b"99999999999999999999999", b"+7", b"-1"):
        _scan_step(client, cursor, 10)
