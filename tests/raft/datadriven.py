"""A small runner for golden test files in etcd's datadriven format.

A file is a sequence of test cases separated by comments (`#`) and blank lines::

    # comment
    command arg1 key=value key2=(1,2)
    optional input lines
    ----
    expected output, ended by a blank line or the end of the file

Output that itself contains blank lines uses the block form: the separator is doubled
(`----` twice) before the output and again after it.

`run_file(path, handler)` parses the file, calls `handler(case)` for each case in order and
compares the returned text with the expected output; the first mismatch raises
`AssertionError` with a unified diff naming the file and line (later cases usually depend
on the state the failing one built). With `rewrite=True` every output is replaced by what
the handler returned and the file is written back, comments and spacing kept.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = "----"


class ParseError(Exception):
    """The test file is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class CmdArg:
    """One argument: `key`, `key=value` or `key=(v1,v2)`. A bare word has no values."""

    key: str
    vals: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.vals:
            return self.key
        if len(self.vals) == 1:
            return f"{self.key}={self.vals[0]}"
        return f"{self.key}=({','.join(self.vals)})"


@dataclass(slots=True)
class TestCase:
    """One command of a test file, with its arguments, input and expected output."""

    __test__ = False  # not a pytest test class despite its name

    path: str
    line: int
    cmd: str
    args: list[CmdArg]
    input: str
    expected: str
    command_text: str = ""
    block_form: bool = False
    _first: int = field(default=0, repr=False)
    _end: int = field(default=0, repr=False)

    @property
    def pos(self) -> str:
        """`file:line` of the command, for error messages."""
        return f"{self.path}:{self.line}"

    def has_arg(self, key: str) -> bool:
        """Whether an argument named `key` is present."""
        return any(a.key == key for a in self.args)

    def arg(self, key: str) -> CmdArg | None:
        """The argument named `key`, if present."""
        return next((a for a in self.args if a.key == key), None)

    def positional(self) -> list[str]:
        """The bare words among the arguments, in order."""
        return [a.key for a in self.args if not a.vals]

    def fail(self, message: str) -> ValueError:
        """An error for the handler to raise, naming this case's position."""
        return ValueError(f"{self.pos}: {self.cmd}: {message}")


def tokenize(line: str) -> list[str]:
    """Split a command line on spaces, keeping `"quoted strings"` and `(a, b)` lists whole."""
    tokens: list[str] = []
    cur: list[str] = []
    depth = 0
    quoted = False
    for ch in line:
        if quoted:
            cur.append(ch)
            quoted = ch != '"'
        elif ch == '"':
            cur.append(ch)
            quoted = True
        elif ch == "(":
            depth += 1
            cur.append(ch)
        elif ch == ")":
            depth -= 1
            cur.append(ch)
        elif ch.isspace() and depth == 0:
            if cur:
                tokens.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted or depth:
        raise ValueError(f"unbalanced quote or parenthesis in {line!r}")
    if cur:
        tokens.append("".join(cur))
    return tokens


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def parse_arg(token: str) -> CmdArg:
    """One argument token as a `CmdArg`."""
    key, eq, value = token.partition("=")
    if not eq:
        return CmdArg(_unquote(key))
    if value.startswith("(") and value.endswith(")"):
        inner = value[1:-1].strip()
        vals = tuple(_unquote(v.strip()) for v in inner.split(",")) if inner else ()
        return CmdArg(key, vals)
    return CmdArg(key, (_unquote(value),))


def parse_file(path: Path) -> tuple[list[str], list[TestCase]]:
    """The file's lines (with their newlines) and its test cases in order."""
    lines = path.read_text().splitlines(keepends=True)
    cases: list[TestCase] = []
    i = 0
    while i < len(lines):
        text = lines[i].rstrip("\n")
        if not text.strip() or text.lstrip().startswith("#"):
            i += 1
            continue
        case, i = _parse_case(str(path), lines, i)
        cases.append(case)
    return lines, cases


def _parse_case(path: str, lines: list[str], i: int) -> tuple[TestCase, int]:
    start = i
    command, i = _read_command(path, lines, i)
    inputs: list[str] = []
    while i < len(lines) and lines[i].rstrip("\n") != SEPARATOR:
        inputs.append(lines[i].rstrip("\n"))
        i += 1
    if i >= len(lines):
        raise ParseError(f"{path}:{start + 1}: no {SEPARATOR} after the command")
    i += 1
    first = i
    block = i < len(lines) and lines[i].rstrip("\n") == SEPARATOR
    expected, i = _read_block(path, lines, i + 1, start) if block else _read_plain(lines, i)
    tokens = tokenize(command)
    case = TestCase(
        path=path,
        line=start + 1,
        cmd=tokens[0],
        args=[parse_arg(t) for t in tokens[1:]],
        input="".join(line + "\n" for line in inputs),
        expected=expected,
        command_text="".join(lines[start:first]),
        block_form=block,
        _first=first,
        _end=i,
    )
    return case, i


def _read_command(path: str, lines: list[str], i: int) -> tuple[str, int]:
    """A command line, joining lines that end with a backslash."""
    parts: list[str] = []
    while i < len(lines):
        text = lines[i].rstrip("\n")
        i += 1
        if text.endswith("\\"):
            parts.append(text[:-1])
            continue
        parts.append(text)
        return " ".join(p.strip() for p in parts), i
    raise ParseError(f"{path}:{i}: command continues past the end of the file")


def _read_plain(lines: list[str], i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(lines) and lines[i].strip():
        out.append(lines[i].rstrip("\n") + "\n")
        i += 1
    return "".join(out), i


def _read_block(path: str, lines: list[str], i: int, start: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(lines):
        text = lines[i].rstrip("\n")
        if text == SEPARATOR and i + 1 < len(lines) and lines[i + 1].rstrip("\n") == SEPARATOR:
            return "".join(out), i + 2
        out.append(text + "\n")
        i += 1
    raise ParseError(f"{path}:{start + 1}: block output is not closed by {SEPARATOR} twice")


def normalize_output(output: str) -> str:
    """Handler output as stored in a file: no trailing spaces, one final newline if any."""
    text = "\n".join(line.rstrip() for line in output.rstrip("\n").split("\n"))
    return text + "\n" if text else ""


def render_output(output: str) -> str:
    """The text that follows a case's separator line for this output."""
    has_blank_line = output and any(not line.strip() for line in output.splitlines())
    if has_blank_line:
        return f"{SEPARATOR}\n{output}{SEPARATOR}\n{SEPARATOR}\n"
    return output


Handler = Callable[[TestCase], str]


def run_file(path: Path, handler: Handler, rewrite: bool = False) -> None:
    """Run every case of `path` through `handler`, checking or rewriting the outputs."""
    lines, cases = parse_file(path)
    actual: list[str] = []
    for case in cases:
        got = normalize_output(handler(case))
        if not rewrite and got != case.expected:
            raise AssertionError(_mismatch(case, got))
        actual.append(got)
    if rewrite:
        path.write_text(_rewritten(lines, cases, actual))


def _mismatch(case: TestCase, got: str) -> str:
    diff = difflib.unified_diff(
        case.expected.splitlines(keepends=True),
        got.splitlines(keepends=True),
        fromfile=f"{case.pos} expected",
        tofile=f"{case.pos} actual",
    )
    return (
        f"{case.pos}: output of `{case.command_text.splitlines()[0]}` differs "
        f"(run pytest with --rewrite to accept):\n" + "".join(diff)
    )


def _rewritten(lines: list[str], cases: list[TestCase], outputs: list[str]) -> str:
    out: list[str] = []
    pos = 0
    for case, output in zip(cases, outputs, strict=True):
        start = case.line - 1
        out.extend(lines[pos:start])
        out.append(case.command_text)
        out.append(render_output(output))
        pos = case._end
        if pos < len(lines) and lines[pos].strip():
            out.append("\n")  # the output must be ended by a blank line
    out.extend(lines[pos:])
    return "".join(out)
