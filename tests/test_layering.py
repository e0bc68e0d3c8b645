"""Cairn's packages form layers, and every import points down (or stays in its package).

`PACKAGE_ORDER` lists the packages under `src/cairn/` from the floor to the top; a module
may import only from its own package or from one listed before it. Every import counts:
at module level, inside a function, or under `TYPE_CHECKING` (a type-only import upward
still ties a lower layer to a higher one). Modules are parsed with `ast`, never imported.
A new package must be given its place here, deliberately.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "cairn"

PACKAGE_ORDER = (
    "resp",  # the RESP codec
    "raft",  # the Raft core
    "check",  # history checkers
    "store",  # the replicated state machine: commands, keyspace, types
    "meta",  # region descriptors every layer shares
    "env",  # the protocols between a node and its world
    "storage",  # LMDB: logs, region state, snapshots (impure)
    "shard",  # regions: replicas, the host, routing
    "txn",  # the cross-region transaction coordinator and lock resolver
    "placement",  # the placement driver and agent
    "sim",  # the deterministic simulator
    "runtime",  # asyncio, sockets, the node (impure)
    "admin",  # the HTTP admin API
    "chaos",  # chaos runs of real clusters
    "cli",  # the command line
)
"""From the floor to the top: each package may import only those before it."""


def cairn_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, package) of every import of another part of `cairn` in a parsed module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, p) for a in node.names if (p := _package_of(a.name))]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "cairn":  # a package, or a name of the root (__version__)
                found += [(node.lineno, a.name) for a in node.names if (SRC / a.name).is_dir()]
            elif package := _package_of(node.module):
                found.append((node.lineno, package))
    return sorted(found)


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cairn" else None


def upward_imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, package) of each import in a module of `package` that points up (or to a
    package the order does not know)."""
    rank = {name: i for i, name in enumerate(PACKAGE_ORDER)}
    return [
        (line, target)
        for line, target in cairn_imports(tree)
        if target != package and rank.get(target, len(rank)) > rank[package]
    ]


def _packages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if p.is_dir() and any(p.glob("*.py")))


def test_every_package_has_a_place_in_the_order() -> None:
    missing = [p for p in _packages() if p not in PACKAGE_ORDER]
    assert not missing, f"give these packages a place in PACKAGE_ORDER: {missing}"


def test_no_package_imports_upward() -> None:
    found = []
    for package in _packages():
        if package not in PACKAGE_ORDER:
            continue  # reported by the test above
        for path in sorted((SRC / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            where = path.relative_to(SRC.parent)
            found += [
                f"{where}:{line}: imports cairn.{t}" for line, t in upward_imports(tree, package)
            ]
    assert not found, f"upward imports (order: {' < '.join(PACKAGE_ORDER)}):\n" + "\n".join(found)


def test_storage_and_shard_are_apart() -> None:
    """Neither sits on the other: storage keeps region descriptors (`cairn.meta`), shard
    writes through `cairn.env`'s protocols, so each is replaceable without the other."""
    for package, other in (("storage", "shard"), ("shard", "storage")):
        targets = {
            t
            for path in (SRC / package).rglob("*.py")
            for _, t in cairn_imports(ast.parse(path.read_text(encoding="utf-8")))
        }
        assert other not in targets, f"cairn.{package} imports cairn.{other}"


PLANTED = """\
from __future__ import annotations
from typing import TYPE_CHECKING
import cairn.raft.types
from cairn.store.db import Db
from cairn import __version__, meta, runtime
if TYPE_CHECKING:
    from cairn.shard.replica import Replica

def late() -> None:
    from cairn.runtime.node import Node
    import cairn.nowhere.thing
"""


def test_planted_upward_imports_are_caught_with_lines() -> None:
    tree = ast.parse(textwrap.dedent(PLANTED))
    assert cairn_imports(tree) == [
        (3, "raft"),
        (4, "store"),
        (5, "meta"),
        (5, "runtime"),
        (7, "shard"),
        (10, "runtime"),
        (11, "nowhere"),
    ]
    assert upward_imports(tree, "storage") == [
        (5, "runtime"),
        (7, "shard"),
        (10, "runtime"),
        (11, "nowhere"),
    ]
    assert upward_imports(tree, "cli") == [(11, "nowhere")]
