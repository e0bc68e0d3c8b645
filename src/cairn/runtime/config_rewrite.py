"""CONFIG REWRITE: the node's CONFIG SET values, written back into its TOML config file.

Theory of operation. The node owns one table of its config file, `[redis]`: CONFIG
parameter name = value, as CONFIG GET shows them, for every parameter whose value differs
from the one the node would start with without that table (Redis' defaults and the
node's own settings: `RedisConfig.for_node`). At start the node applies the table as one
CONFIG SET (`apply_saved`), so a restart keeps what CONFIG REWRITE saved; a value the
table sets wins over the top-level key it mirrors (`requirepass` over `password`,
`maxclients` over `limits.max_clients`, ...).

Everything else in the file is the operator's and is kept byte for byte: REWRITE removes
the old `[redis]` table (from its header to the next table header) and appends the new
one at the end; it checks that the result parses to the same settings apart from that
table, and refuses otherwise. The file is replaced atomically (a temporary file in the
same directory, fsynced, mode 0600 since it may hold `requirepass`, then renamed), so a
crash leaves the old file or the new one, never a mix. A node started without a config
file answers Redis' `ERR The server is running without a config file`.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cairn.resp.reply import ErrorReply
from cairn.runtime.redis_params import PARAMS

TABLE = "redis"
NO_CONFIG_FILE = ErrorReply("ERR The server is running without a config file")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(#.*)?$")
_COMMENT = "# Written by CONFIG REWRITE: this node's CONFIG SET values."


def changed_values(current: Mapping[str, bytes], base: Mapping[str, bytes]) -> dict[str, str]:
    """The parameters whose value differs from the start value, in table order."""
    return {
        p.name: current[p.name].decode("utf-8", "surrogateescape")
        for p in PARAMS
        if current[p.name] != base[p.name]
    }


def _quote(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _quote(name)


def without_table(text: str) -> str:
    """`text` with its `[redis]` table (header to the next table header) removed."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header is not None:
            inside = header.group(1) == TABLE and not line.lstrip().startswith("[[")
        if not inside:
            out.append(line)
    kept = "".join(out).rstrip("\n")
    if kept.endswith(_COMMENT):
        kept = kept[: -len(_COMMENT)].rstrip("\n")
    return kept + "\n" if kept else ""


def rewritten(text: str, values: Mapping[str, str]) -> str:
    """The file `text` with `values` as its `[redis]` table (none: no table)."""
    kept = without_table(text)
    if not values:
        return kept
    lines = [_COMMENT, f"[{TABLE}]"] + [f"{_key(k)} = {_quote(v)}" for k, v in values.items()]
    return kept + ("\n" if kept else "") + "\n".join(lines) + "\n"


def _parsed(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def rewrite_file(path: Path, values: Mapping[str, str]) -> ErrorReply | None:
    """Write `values` into `path`'s `[redis]` table, atomically; None or the error."""
    try:
        text = path.read_text()
        before = _parsed(text)
        new_text = rewritten(text, values)
        after = _parsed(new_text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return ErrorReply(f"ERR Rewriting config file: {exc}")
    before.pop(TABLE, None)
    saved = after.pop(TABLE, {})
    if before != after or saved != dict(values):
        return ErrorReply("ERR Rewriting config file: the file's layout is not understood")
    try:
        _replace_atomically(path, new_text)
    except OSError as exc:
        return ErrorReply(f"ERR Rewriting config file: {exc.strerror or exc}")
    return None


def _replace_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def saved_args(saved: Mapping[str, object]) -> list[bytes] | ErrorReply:
    """The `[redis]` table as CONFIG SET arguments (values must be strings)."""
    args: list[bytes] = []
    for name, value in saved.items():
        if not isinstance(value, str):
            return ErrorReply(f"ERR [redis] {name}: expected a string, got {value!r}")
        args += [name.encode(), value.encode("utf-8", "surrogateescape")]
    return args
