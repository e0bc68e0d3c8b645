"""The pure packages touch no clock, socket, file system, thread or global random source.

Each module is parsed with `ast` (never imported) and every import is checked. `random` is
allowed only for its `Random` class: `from random import Random`, or `import random` where
every use is `random.Random`; any other `random.<name>` (random.random(), random.choice(),
random.seed() ...) is the global random source leaking in. Nor may a pure package import
Cairn's impure packages (`cairn.runtime`, `cairn.storage` ...): the real world reaches it
only through `cairn.env`'s protocols.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "cairn"

PURE_PACKAGES = (
    "raft",
    "resp",
    "store",
    "meta",
    "env",
    "shard",
    "placement",
    "txn",
    "check",
    "sim",
)

IMPURE_PACKAGES = frozenset({"runtime", "storage", "admin", "chaos", "cli"})
"""Cairn's packages that do I/O (sockets, LMDB, files, processes): no pure module imports
them, not even for a type."""

SIM_IMPURE_MODULES: frozenset[str] = frozenset()
"""Modules of `cairn.sim` allowed to do I/O (paths relative to src/cairn/sim). Keep it small;
the simulation itself needs none."""

FORBIDDEN_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "time",
        "os",
        "threading",
        "subprocess",
        "select",
        "selectors",
        # the same leaks under other names: worker threads and processes
        "concurrent",
        "multiprocessing",
    }
)


@dataclass(frozen=True, slots=True)
class Impurity:
    """One forbidden use: where, and what."""

    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def _impure_cairn(module: str) -> bool:
    """Whether `module` (dotted) is, or is inside, one of Cairn's impure packages."""
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == "cairn" and parts[1] in IMPURE_PACKAGES


def _import_problems(node: ast.Import, random_aliases: set[str]) -> list[tuple[int, str]]:
    found = []
    for alias in node.names:
        top = alias.name.split(".")[0]
        if _impure_cairn(alias.name):
            found.append((node.lineno, f"imports {alias.name}"))
        elif alias.name == "random":
            random_aliases.add(alias.asname or "random")
        elif top in FORBIDDEN_MODULES or top == "random":
            found.append((node.lineno, f"imports {alias.name}"))
    return found


def _import_from_problems(node: ast.ImportFrom) -> list[tuple[int, str]]:
    if node.level or node.module is None:
        return []  # relative: a module of the same package (none of Cairn's is relative)
    names = ", ".join(a.name for a in node.names)
    if _impure_cairn(node.module):
        return [(node.lineno, f"imports {names} from {node.module}")]
    if node.module == "cairn":
        impure = [a.name for a in node.names if a.name in IMPURE_PACKAGES]
        return [(node.lineno, f"imports {name} from cairn") for name in impure]
    top = node.module.split(".")[0]
    if top in FORBIDDEN_MODULES:
        return [(node.lineno, f"imports {names} from {node.module}")]
    if top != "random":
        return []
    return [
        (node.lineno, f"imports {alias.name} from {node.module}")
        for alias in node.names
        if node.module != "random" or alias.name != "Random"
    ]


def find_impurities(path: Path, module: str) -> list[Impurity]:
    """The forbidden imports and uses of the global random source in one source file.

    Imports are collected first, so a use of `random.x` above a late `import random` is
    still caught."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    random_aliases: set[str] = set()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += _import_problems(node, random_aliases)
        elif isinstance(node, ast.ImportFrom):
            found += _import_from_problems(node)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_aliases
            and node.attr != "Random"
        ):
            use = f"{node.value.id}.{node.attr}"
            found.append((node.lineno, f"uses {use} (the global random source)"))
    return [Impurity(module, line, what) for line, what in sorted(found)]


def pure_modules() -> list[tuple[Path, str]]:
    """Every module of the pure packages that exist so far, with its dotted name."""
    found: list[tuple[Path, str]] = []
    for package in PURE_PACKAGES:
        root = SRC / package
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if package == "sim" and relative in SIM_IMPURE_MODULES:
                continue
            dotted = ".".join(("cairn", package, *path.relative_to(root).with_suffix("").parts))
            found.append((path, dotted))
    return found


def test_pure_packages_do_no_io() -> None:
    modules = pure_modules()
    assert any(name.startswith("cairn.check.") for _, name in modules)
    assert any(name.startswith("cairn.raft.") for _, name in modules)
    impurities = [str(i) for path, name in modules for i in find_impurities(path, name)]
    assert not impurities, "impure code in pure packages:\n" + "\n".join(impurities)


def test_sim_exemptions_exist() -> None:
    for relative in SIM_IMPURE_MODULES:
        assert (SRC / "sim" / relative).is_file(), f"stale exemption: sim/{relative}"


# --- the checker catches what it must ---------------------------------------------------------

PLANTED = """\
import os.path
import asyncio as aio
from time import monotonic
import random
from random import Random, randint
from threading import Lock
import selectors, subprocess
from select import select
import socket
from cairn.runtime.env import Clock
import cairn.storage.log_store
from cairn import storage, raft

def f(rng: random.Random) -> float:
    random.seed(4)
    return random.random() + rng.random()
"""

CLEAN = """\
from __future__ import annotations
import random
from random import Random
from . import sibling
from .time import Clock  # a sibling module that happens to be called time
import timeit, ossaudiodev_like_name, randomness
from cairn.env import Clock
from cairn.meta.region import Region
import cairn.runtimes_like_name

def make(seed: int) -> random.Random:
    return random.Random(seed)

def roll(rng: Random) -> int:
    return rng.randint(1, 6)
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "planted.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_planted_bad_module_is_caught_with_lines(tmp_path: Path) -> None:
    found = [str(i) for i in find_impurities(_write(tmp_path, PLANTED), "cairn.raft.planted")]
    assert found == [
        "cairn.raft.planted:1: imports os.path",
        "cairn.raft.planted:2: imports asyncio",
        "cairn.raft.planted:3: imports monotonic from time",
        "cairn.raft.planted:5: imports randint from random",
        "cairn.raft.planted:6: imports Lock from threading",
        "cairn.raft.planted:7: imports selectors",
        "cairn.raft.planted:7: imports subprocess",
        "cairn.raft.planted:8: imports select from select",
        "cairn.raft.planted:9: imports socket",
        "cairn.raft.planted:10: imports Clock from cairn.runtime.env",
        "cairn.raft.planted:11: imports cairn.storage.log_store",
        "cairn.raft.planted:12: imports storage from cairn",
        "cairn.raft.planted:15: uses random.seed (the global random source)",
        "cairn.raft.planted:16: uses random.random (the global random source)",
    ]


def test_aliased_random_module_is_tracked(tmp_path: Path) -> None:
    path = _write(tmp_path, "x = 1\nr = rnd.choice([1])\nimport random as rnd\n")
    assert [str(i) for i in find_impurities(path, "m")] == [
        "m:2: uses rnd.choice (the global random source)"
    ]


def test_clean_module_passes(tmp_path: Path) -> None:
    assert find_impurities(_write(tmp_path, CLEAN), "cairn.check.clean") == []
