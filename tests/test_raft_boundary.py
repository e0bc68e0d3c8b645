"""Outside `cairn.raft`, Raft is reached only through `RawNode`'s API.

Drivers (the replica, the host, the placement group, the simulator, the admin API, the
tests of those) read the core through `RawNode`'s views (`term`, `role`, `log`,
`peer_matches()`, `lease_clock`, `status()` ...) and change it only through its
operations (`tick`, `step`, `propose`, `advance_lease_clock` ...). Reaching past it into the
`Raft` object ties them to its internals and lets them break its invariants (a driver once
wrote the core's tick count). Each module is parsed with `ast` (never imported) and three
things are refused: `<x>.raw.raft` (or `raw.raft`), an attribute named like one of the
core's internals, and importing the core's internal modules. Only `cairn.raft` itself and
its own tests (`tests/raft/`) may do these.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "cairn"
TESTS = ROOT / "tests"

CORE_INTERNALS = frozenset(
    {
        "raft_log",
        "tick_count",
        "prs",
        "msgs_after_persist",
        "pending_conf_index",
        "pending_read_index",
        "randomized_election_timeout",
        "heartbeat_elapsed",
        "lease_acks",
        "lease_revoked",
        "uncommitted_size",
        "unstable",
    }
)
"""Attributes of `Raft` and `RaftLog` that no driver has a reason to name (`RawNode` offers
what they hold: `log`, `lease_clock`, `peer_matches()`, `conf_change_pending()` ...)."""

INTERNAL_MODULES = frozenset(
    {
        "cairn.raft.raft",
        "cairn.raft.log",
        "cairn.raft.tracker",
        "cairn.raft.quorum",
        "cairn.raft.read_only",
        "cairn.raft.leader",
    }
)
"""Modules of the core that only `cairn.raft` imports (`rawnode`, `types`, `ready`,
`config`, `errors`, `storage`, `wire` ... are its public face)."""


def find_reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of every reach past `RawNode` in one parsed module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            found += _attribute_reach(node)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module in INTERNAL_MODULES:
                found.append((node.lineno, f"imports {node.module}"))
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name in INTERNAL_MODULES]
            found += [(node.lineno, f"imports {name}") for name in names]
    return sorted(found)


def _attribute_reach(node: ast.Attribute) -> list[tuple[int, str]]:
    if node.attr in CORE_INTERNALS:
        return [(node.lineno, f"names the core's .{node.attr}")]
    if node.attr != "raft":
        return []
    inner = node.value
    if (isinstance(inner, ast.Attribute) and inner.attr == "raw") or (
        isinstance(inner, ast.Name) and inner.id == "raw"
    ):
        return [(node.lineno, "reaches into .raw.raft")]
    return []


def _checked_files() -> list[Path]:
    """Every source and test module outside the core and its own tests."""
    files = [p for p in sorted(SRC.rglob("*.py")) if (SRC / "raft") not in p.parents]
    files += [p for p in sorted(TESTS.rglob("*.py")) if (TESTS / "raft") not in p.parents]
    return files


def test_nothing_outside_the_core_reaches_past_rawnode() -> None:
    reaches = []
    clues = ("raft", *CORE_INTERNALS)  # every reach names one of these; parse only those
    for path in _checked_files():
        text = path.read_text(encoding="utf-8")
        if not any(clue in text for clue in clues):
            continue
        tree = ast.parse(text, filename=str(path))
        where = path.relative_to(ROOT)
        reaches += [f"{where}:{line}: {what}" for line, what in find_reaches(tree)]
    assert not reaches, "use RawNode's API instead:\n" + "\n".join(reaches)


def test_the_listed_internals_exist() -> None:
    """A name dropped from the core must leave the lists, or the check guards nothing."""
    assigned = set()
    for path in (SRC / "raft").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and isinstance(node.ctx, ast.Store)
            ):
                assigned.add(node.attr)
    assert not CORE_INTERNALS - assigned, "stale names in CORE_INTERNALS"
    for module in INTERNAL_MODULES:
        assert (SRC / "raft" / f"{module.rsplit('.', 1)[1]}.py").is_file(), module


PLANTED = """\
from cairn.raft.log import RaftLog
import cairn.raft.raft

def f(replica, raw, log):
    replica.raw.raft.tick_count += 3
    x = raw.raft.role
    return log.committed, replica.raw.log.committed, replica.config.raft, log.unstable
"""


def test_planted_reaches_are_caught_with_lines() -> None:
    found = find_reaches(ast.parse(textwrap.dedent(PLANTED)))
    assert found == [
        (1, "imports cairn.raft.log"),
        (2, "imports cairn.raft.raft"),
        (5, "names the core's .tick_count"),
        (5, "reaches into .raw.raft"),
        (6, "reaches into .raw.raft"),
        (7, "names the core's .unstable"),
    ]
