"""Reading the command scripts in `scripts/`: redis-cli's argument quoting and the tags.

Each value type keeps its own script (`scripts/core.txt` for strings, hashes and keys,
`scripts/lists.txt`, ...); each starts with FLUSHALL, so they replay in any order.

A line is a command in redis-cli syntax (sdssplitargs: bare words, "double quotes" with
backslash escapes including \\xHH, 'single quotes' with only \\' escaped). Blank lines and
lines starting with `#` are ignored. A trailing ` # tag[,tag]` marks a reply the byte-for-
byte comparison must treat specially:

* `ttl`: depends on the clock (compare the reply's shape, not its value);
* `random`: depends on a random choice (compare the shape);
* `unordered`: an array whose order is unspecified (compare sorted; pairs for HGETALL);
* `scan`: a SCAN-family reply (cursor and batch differ; compare the shape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).with_name("scripts")
_TAGS = re.compile(r"\s+#\s*([a-z]+(?:,[a-z]+)*)\s*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


@dataclass(frozen=True, slots=True)
class ScriptLine:
    """One command of the script."""

    number: int
    argv: tuple[bytes, ...]
    tags: frozenset[str]
    source: str = ""

    @property
    def where(self) -> str:
        """Where the line is, for a failure message: `lists.txt:12`."""
        return f"{self.source}:{self.number}"


def split_args(line: str) -> list[bytes]:
    """Split one command line like redis-cli (`sdssplitargs`); ValueError if unbalanced."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        current = bytearray()
        if line[i] == '"':
            i = _double_quoted(line, i + 1, current)
        elif line[i] == "'":
            i = _single_quoted(line, i + 1, current)
        else:
            while i < n and not line[i].isspace():
                current += line[i].encode()
                i += 1
        args.append(bytes(current))


def _double_quoted(line: str, i: int, out: bytearray) -> int:
    while i < len(line):
        c = line[i]
        if c == "\\" and line[i + 1 : i + 2] == "x" and re.match(r"[0-9a-fA-F]{2}", line[i + 2 :]):
            out.append(int(line[i + 2 : i + 4], 16))
            i += 4
        elif c == "\\" and i + 1 < len(line):
            out += _ESCAPES.get(line[i + 1], line[i + 1]).encode()
            i += 2
        elif c == '"':
            return _closing(line, i)
        else:
            out += c.encode()
            i += 1
    raise ValueError("unbalanced double quotes")


def _single_quoted(line: str, i: int, out: bytearray) -> int:
    while i < len(line):
        c = line[i]
        if c == "\\" and line[i + 1 : i + 2] == "'":
            out += b"'"
            i += 2
        elif c == "'":
            return _closing(line, i)
        else:
            out += c.encode()
            i += 1
    raise ValueError("unbalanced single quotes")


def _closing(line: str, i: int) -> int:
    if i + 1 < len(line) and not line[i + 1].isspace():
        raise ValueError("closing quote must be followed by a space")
    return i + 1


def parse_script(text: str, source: str = "") -> list[ScriptLine]:
    """Every command of a script with its tags."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tags: frozenset[str] = frozenset()
        if match := _TAGS.search(stripped):
            tags = frozenset(match.group(1).split(","))
            stripped = stripped[: match.start()]
        lines.append(ScriptLine(number, tuple(split_args(stripped)), tags, source))
    return lines


def load_script() -> list[ScriptLine]:
    """The commands of every script in `scripts/`, file by file in name order."""
    lines: list[ScriptLine] = []
    for path in sorted(SCRIPTS.glob("*.txt")):
        lines += parse_script(path.read_text(), path.name)
    return lines
