"""`cairn.store.work_hints`: which entries may create background work, and the machine's
walks that skip a region without any (no key with a TTL, no trimmed stream, no status
record, no request id) without reading, yet find work again as soon as it may exist,
including after a restart or a snapshot (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator

from counting_keyspace import CountingKeyspace

from cairn.resp.reply import Integer
from cairn.store import EXPIRE_DELETE, StoreMachine, encode_command
from cairn.store.commands import COMMANDS
from cairn.store.idempotency_entries import IDEM_COMMAND, PURGE_COMMAND
from cairn.store.transaction import TXN_COMMAND, encode_transaction
from cairn.store.work_hints import (
    ALL,
    REQUESTS,
    STATUSES,
    TRIMMED,
    VOLATILE,
    entry_hints,
)

T0 = 1_700_000_000_000


class Region:
    """A machine over a counting keyspace, fed entries one index after another."""

    def __init__(self, space: CountingKeyspace | None = None) -> None:
        self.space = space if space is not None else CountingKeyspace()
        self.machine = StoreMachine(self.space)  # type: ignore[arg-type]  # a Keyspace
        self.index = self.machine.applied_index

    def apply(self, name: str, *args: bytes, now: int = T0) -> object:
        self.index += 1
        return self.machine.apply(self.index, encode_command(name, list(args), now))

    def expire_laps(self, now: int, limit: int = 8) -> Iterator[list[bytes]]:
        """Each call's answer until the expiry walk wraps around once (at most 100)."""
        for _ in range(100):
            yield self.machine.expired_keys(now, limit)
            if self.machine._expiry_position == self.machine.scope.meta_bounds()[0]:
                return


def plain_keys(region: Region, count: int) -> None:
    region.apply("mset", *[x for i in range(count) for x in (b"k%d" % i, b"v")])


# -- the classification ---------------------------------------------------------------


def test_plain_writes_create_no_work_and_ttl_options_do() -> None:
    assert entry_hints("set", [b"k", b"v"]) == 0
    assert entry_hints("set", [b"k", b"v", b"NX", b"GET", b"KEEPTTL"]) == 0
    assert entry_hints("set", [b"k", b"v", b"xx", b"px", b"10"]) == VOLATILE
    assert entry_hints("getex", [b"k", b"PERSIST"]) == 0
    assert entry_hints("getex", [b"k", b"exat", b"10"]) == VOLATILE
    assert entry_hints("hset", [b"h", b"f", b"v"]) == 0
    assert entry_hints("pexpire", [b"k", b"10"]) & VOLATILE
    assert entry_hints("rename", [b"a", b"b"]) == VOLATILE | TRIMMED  # moves what it had
    assert entry_hints("xtrim", [b"s", b"MAXLEN", b"0"]) == TRIMMED
    assert entry_hints("cairn.txn.gc", [b"1"]) == STATUSES
    assert entry_hints(PURGE_COMMAND, []) == REQUESTS
    assert entry_hints("cairn.txn.commit", [b"1", b"2", b"1", b"k"]) == ALL
    assert entry_hints("no-such-command", []) == ALL  # unknown: may create anything


def test_wrappers_create_what_they_wrap() -> None:
    plain = encode_transaction([], [[b"SET", b"a", b"1"], [b"INCR", b"b"]])
    ttl = encode_transaction([], [[b"SET", b"a", b"1"], [b"SETEX", b"b", b"5", b"v"]])
    assert entry_hints(TXN_COMMAND, [plain]) == 0
    assert entry_hints(TXN_COMMAND, [ttl]) == VOLATILE
    assert entry_hints(IDEM_COMMAND, [b"r1", b"100", b"10", b"SET", b"k", b"v"]) == REQUESTS
    tagged_ttl = [b"r1", b"100", b"10", b"set", b"k", b"v", b"EX", b"5"]
    assert entry_hints(IDEM_COMMAND, tagged_ttl) == REQUESTS | VOLATILE


def test_every_client_write_is_classified_on_purpose() -> None:
    """A new write command is `ALL` (safe, but walked for) until someone decides what it
    may create; scripts never reach the machine as themselves (their effects do)."""
    unclassified = {
        name
        for name, spec in COMMANDS.items()
        if spec.is_write and entry_hints(name, [b"k", b"v"]) == ALL
    }
    assert unclassified == {"eval", "evalsha", "fcall"}


# -- the expiry walk -------------------------------------------------------------------


def test_a_region_without_ttls_is_skipped_after_one_lap_and_found_again_on_its_first() -> None:
    region = Region()
    plain_keys(region, 300)
    assert all(found == [] for found in region.expire_laps(T0 + 1))
    assert not region.machine.hints.expiry.possible
    reads = region.space.reads
    for i in range(50):  # a write load of plain SETs: skipped without a single read
        region.apply("set", b"k%d" % i, b"w")
        assert region.machine.expired_keys(T0 + 1, 8) == []
    assert region.space.reads == reads
    # The region gains its first volatile key: the next look walks, and finds it.
    region.apply("set", b"k250", b"v", b"PX", b"10")
    found = [key for keys in region.expire_laps(T0 + 20) for key in keys]
    assert found == [b"k250"]
    assert region.apply(EXPIRE_DELETE, *found, now=T0 + 20) == Integer(1)
    assert all(found == [] for found in region.expire_laps(T0 + 30))  # a clean lap
    assert not region.machine.hints.expiry.possible


def test_a_region_whose_ttls_are_far_off_is_not_walked_until_the_first_is_due() -> None:
    region = Region()
    plain_keys(region, 300)
    region.apply("pexpire", b"k7", b"60000")
    region.apply("pexpire", b"k9", b"5000")
    assert all(found == [] for found in region.expire_laps(T0 + 1))  # met two deadlines
    assert region.machine.hints.expiry.due == T0 + 5000
    reads = region.space.reads
    region.apply("set", b"k1", b"w")
    assert region.machine.expired_keys(T0 + 4999, 8) == []
    assert region.space.reads == reads
    assert [k for keys in region.expire_laps(T0 + 5000) for k in keys] == [b"k9"]
    # An entry that may set a TTL cancels the wait: the next look walks again.
    region.apply("set", b"k2", b"v", b"PX", b"1")
    assert region.machine.hints.expiry.due is None
    assert sorted(k for keys in region.expire_laps(T0 + 5000) for k in keys) == [b"k2", b"k9"]


def test_a_ttl_set_behind_the_walk_keeps_the_lap_from_ending_clean() -> None:
    region = Region()
    plain_keys(region, 400)
    region.machine.expired_keys(T0, 8)  # 160 keys looked at: k0 lies behind the walk
    first = min(region.machine.keyspace.scan(b"M", b"N"))[0][3:]
    region.apply("pexpire", first, b"5")
    while region.machine._expiry_position != region.machine.scope.meta_bounds()[0]:
        region.machine.expired_keys(T0 + 1, 8)
    assert region.machine.hints.expiry.possible  # the lap that ended saw the entry
    assert [key for keys in region.expire_laps(T0 + 10) for key in keys] == [first]


def test_a_restart_or_a_snapshot_starts_unknown_and_finds_the_ttls_it_holds() -> None:
    region = Region()
    plain_keys(region, 100)
    region.apply("pexpire", b"k42", b"10")
    image = region.machine.snapshot()
    restarted = Region(region.space)  # a new machine over the same records
    assert restarted.machine.hints.expiry.possible
    assert [k for keys in restarted.expire_laps(T0 + 10) for k in keys] == [b"k42"]
    installed = Region()
    plain_keys(installed, 10)
    assert all(found == [] for found in installed.expire_laps(T0))
    assert not installed.machine.hints.expiry.possible
    installed.machine.restore(image)  # a follower catching up from the image
    assert [k for keys in installed.expire_laps(T0 + 10) for k in keys] == [b"k42"]


# -- the stream walk, status records, request ids ---------------------------------------


def test_the_stream_walk_stops_after_a_clean_lap_and_resumes_on_a_trim() -> None:
    region = Region()
    plain_keys(region, 200)
    while region.machine.may_hold_trimmed_streams:
        assert region.machine.reclaimable_streams(T0, 8) == []
    reads = region.space.reads
    region.apply("set", b"k1", b"w")
    assert region.machine.reclaimable_streams(T0, 8) == []
    assert region.space.reads == reads
    for _ in range(100):  # more than a write reclaims by itself (RECLAIM_BATCH)
        region.apply("xadd", b"s", b"*", b"f", b"v")
    region.apply("xtrim", b"s", b"MAXLEN", b"0")
    assert region.machine.may_hold_trimmed_streams
    found = {key for _ in range(5) for key in region.machine.reclaimable_streams(T0, 8)}
    assert found == {b"s"}


def test_status_records_and_request_ids_are_read_only_after_entries_that_change_them() -> None:
    region = Region()
    plain_keys(region, 10)
    assert not region.machine.may_hold_statuses
    assert not region.machine.has_expired_requests(T0)
    reads = region.space.reads
    region.apply("set", b"k1", b"w")
    assert not region.machine.may_hold_statuses
    assert not region.machine.has_expired_requests(T0 + 10**9)
    assert region.space.reads == reads  # nothing that could change them was applied
    # A tagged write adds a request id expiring 100 ms later: due then, not before.
    region.apply(IDEM_COMMAND, b"r1", b"100", b"10", b"set", b"k", b"v")
    assert not region.machine.has_expired_requests(T0 + 99)
    reads = region.space.reads
    assert region.machine.has_expired_requests(T0 + 100)
    assert region.space.reads == reads  # known from the first look
    assert region.apply(PURGE_COMMAND, now=T0 + 100) == Integer(1)
    assert not region.machine.has_expired_requests(T0 + 10**9)
    # A transaction's status check writes a status record (rolled back: no lock found).
    region.apply("cairn.txn.status", b"k", b"%d" % 7)
    assert region.machine.may_hold_statuses
