"""Helpers shared by the RESP tests: drive a parser over chunked input and collect the outcome."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cairn.resp import NEED_DATA, Limits, RemoteProtocolError, RequestParser


@dataclass(frozen=True, slots=True)
class Outcome:
    """Every command a parser produced, then the error text it stopped on (None if it did not)."""

    commands: tuple[tuple[bytes, ...], ...]
    error: str | None
    reply: bool = True


def as_resp(args: Sequence[bytes]) -> bytes:
    """A command as a client library sends it (a RESP array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (out-of-range and repeated offsets are ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def run(
    chunks: Iterable[bytes],
    limits: Limits | None = None,
    *,
    fast: bool = True,
    max_seen: list[int] | None = None,
) -> Outcome:
    """Feed the chunks one by one, draining commands after each, as a server does."""
    parser = RequestParser(limits or Limits(), fast=fast)
    commands: list[tuple[bytes, ...]] = []
    for chunk in chunks:
        parser.feed(chunk)
        if max_seen is not None:
            max_seen.append(parser.buffered)
        try:
            while (command := parser.next_command()) is not NEED_DATA:
                assert command, "a parser must never return an empty command"
                commands.append(tuple(command))
        except RemoteProtocolError as error:
            return Outcome(tuple(commands), str(error), error.reply)
    return Outcome(tuple(commands), None)


def run_both(chunks: Sequence[bytes], limits: Limits | None = None) -> Outcome:
    """Run the fast and the reference paths; they must agree."""
    fast = run(chunks, limits)
    slow = run(chunks, limits, fast=False)
    assert fast == slow
    return fast
