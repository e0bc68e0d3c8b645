"""Lua scripting (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION, FCALL, FCALL_RO),
as Redis 7.0 runs it.

`sandbox` builds the restricted Lua 5.1 state and its budget (with `prelude`'s parts),
`convert` turns replies into Lua values and back, `engine` runs one script or function
against the command's `Db`, `commands` holds the table entries, `cache` the node's script
cache and front (EVALSHA → EVAL, SCRIPT), `functions` the library table and FUNCTION,
`front` FCALL's routing and the script tail (library code, caller's ACL rules), `acl` the
per-call ACL check, `libs` (`cjson`, `cmsgpack`, `lstruct`) the libraries Redis ships,
`effects` the replication of a script by the records it wrote (on `cairn.store.overlay`),
and `subcommands` FUNCTION's and SCRIPT's subcommand metadata.
"""

from cairn.store.scripting.cache import FRONT_COMMANDS, ScriptCache, ScriptFront, sha1_hex
from cairn.store.scripting.commands import COMMANDS
from cairn.store.scripting.sandbox import DEFAULT_LIMITS, ScriptLimits

__all__ = [
    "COMMANDS",
    "DEFAULT_LIMITS",
    "FRONT_COMMANDS",
    "ScriptCache",
    "ScriptFront",
    "ScriptLimits",
    "sha1_hex",
]
