"""Measure the RESP codec's throughput: requests parsed and replies encoded per CPU second.

Parsing runs GET and SET (100-byte values) pipelines through four parsers, fed as a
server is fed: in 64 KiB socket reads, in 16-command pipelines (what each client of
`redis-benchmark -P 16` sends per round trip) and one command per read (no pipelining):

* `cairn fast`       RequestParser as shipped (fast path, reference path for the rest)
* `cairn reference`  RequestParser(fast=False): the Redis-transcribed path alone
* `validate+hiredis` Python validates every header (what Redis' limits require, since
                     hiredis allocates a list for any `*<n>` it reads), then hiredis builds
                     the arguments; the best hiredis can do safely, lacking error handling
* `hiredis unsafe`   hiredis alone with no validation: a ceiling, not an option

Encoding runs pipelines of SET replies (+OK), GET replies (100-byte bulks) and one
1000-element array (an MGET or HGETALL answer), in RESP2 and RESP3.

    python bench/resp_speed.py                # about 20 s
    python bench/resp_speed.py --commands 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial

import hiredis

from cairn.resp import NEED_DATA, RequestParser, encode_many
from cairn.resp.inline import parse_ll
from cairn.resp.reply import OK, Array, Bulk, Reply

VALUE = b"v" * 100


def _command(args: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def _workload(kind: str, count: int) -> bytes:
    if kind == "GET":
        return b"".join(_command([b"GET", b"key:%012d" % i]) for i in range(count))
    return b"".join(_command([b"SET", b"key:%012d" % i, VALUE]) for i in range(count))


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _cairn(chunks: list[bytes], fast: bool) -> int:
    parser = RequestParser(fast=fast)
    count = 0
    for chunk in chunks:
        parser.feed(chunk)
        while parser.next_command() is not NEED_DATA:
            count += 1
    return count


class _ValidatingHiredis:
    """Checks each complete command's headers against Redis' limits, then lets hiredis parse.

    Only what a safe hiredis path cannot skip; inline commands, errors and the
    unauthenticated limits are left out, so real code would be slower still.
    """

    def __init__(self, max_array: int = 1024 * 1024, max_bulk: int = 512 * 1024 * 1024) -> None:
        self.reader = hiredis.Reader()
        self.pending = b""
        self.max_array, self.max_bulk = max_array, max_bulk

    def feed(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        end = self._validated(buf)
        self.reader.feed(buf[:end] if end < len(buf) else buf)
        self.pending = buf[end:]

    def _validated(self, buf: bytes) -> int:
        """Offset up to which `buf` holds complete, valid commands."""
        pos, done = 0, 0
        find = buf.find
        while True:
            line = find(b"\r\n", pos)
            if line < 0 or buf[pos] != 0x2A:
                return done
            count = parse_ll(buf[pos + 1 : line])
            if count is None or not 0 < count <= self.max_array:
                return done
            pos = line + 2
            for _ in range(count):
                line = find(b"\r\n", pos)
                if line < 0 or buf[pos] != 0x24:
                    return done
                size = parse_ll(buf[pos + 1 : line])
                if size is None or not 0 <= size <= self.max_bulk:
                    return done
                pos = line + 4 + size
            if pos > len(buf):
                return done
            done = pos


def _validate_hiredis(chunks: list[bytes]) -> int:
    parser = _ValidatingHiredis()
    gets = parser.reader.gets
    count = 0
    for chunk in chunks:
        parser.feed(chunk)
        while gets() is not False:
            count += 1
    return count


def _hiredis_unsafe(chunks: list[bytes]) -> int:
    reader = hiredis.Reader()
    gets = reader.gets
    count = 0
    for chunk in chunks:
        reader.feed(chunk)
        while gets() is not False:
            count += 1
    return count


PARSERS: dict[str, Callable[[list[bytes]], int]] = {
    "cairn fast": lambda chunks: _cairn(chunks, True),
    "cairn reference": lambda chunks: _cairn(chunks, False),
    "validate+hiredis": _validate_hiredis,
    "hiredis unsafe": _hiredis_unsafe,
}


def _best_cpu(run: Callable[[], int], expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        got = run()
        best = min(best, time.process_time() - start)
        assert got == expected, (got, expected)
    return best


def bench_parse(commands: int, repeat: int) -> None:
    print(f"parse: {commands:,} commands per run, best of {repeat}, commands per CPU second")
    for kind in ("GET", "SET"):
        data = _workload(kind, commands)
        per_command = len(data) // commands
        feeds = {
            "64 KiB reads": _chunks(data, 65536),
            "16-cmd pipelines": _chunks(data, 16 * per_command),
            "1-cmd reads": _chunks(data, per_command),
        }
        for feed_name, chunks in feeds.items():
            line = [f"  {kind} {feed_name:<17}"]
            for name, parser in PARSERS.items():
                cpu = _best_cpu(partial(parser, chunks), commands, repeat)
                line.append(f"{name} {commands / cpu:>10,.0f}")
            print("  ".join(line))


def bench_encode(commands: int, repeat: int) -> None:
    print(f"encode: best of {repeat}, replies per CPU second")
    cases: dict[str, list[Reply]] = {
        "SET +OK pipeline": [OK] * commands,
        "GET 100-byte bulks": [Bulk(VALUE)] * commands,
        "1000-item arrays": [Array(tuple(Bulk(b"field:%d" % i) for i in range(1000)))]
        * (commands // 1000),
    }
    for name, replies in cases.items():
        line = [f"  {name:<20}"]
        for protocol in (2, 3):
            best = float("inf")
            for _ in range(repeat):
                start = time.process_time()
                encode_many(replies, protocol)
                best = min(best, time.process_time() - start)
            items = len(replies) * (1000 if name.startswith("1000") else 1)
            line.append(f"RESP{protocol} {items / best:>12,.0f} items/s")
        print("  ".join(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    bench_parse(options.commands, options.repeat)
    bench_encode(options.commands, options.repeat)


if __name__ == "__main__":
    main()
