"""The Lua libraries Redis ships (cjson, cmsgpack, struct, bit) bounded by the script's budget:
hostile input ends the script with the budget's or the library's error, quickly, and the
node's Python stays unharmed. Their outputs are compared with redis-server in
`scripts/script_libraries.txt`."""

from __future__ import annotations

import time

import pytest
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import Bulk, ErrorReply, Integer

HOSTILE = [
    # a 2 MB JSON text: refused by its size before any parsing
    ("return cjson.decode('[' .. string.rep('1,', 1000000) .. '1]')", "budget"),
    # nesting past CJSON's 1000 levels
    ("return cjson.decode(string.rep('[', 100000))", "too many nested"),
    # a table reachable 2^40 times through itself: charged per value
    ("local t = {1} for i = 1, 40 do t = {t, t} end return cjson.encode(t)", "budget"),
    ("local t = {1} for i = 1, 15 do t = {t, t, t, t} end return cmsgpack.pack(t)", "budget"),
    # an array header claiming four billion elements, three bytes of them
    ("return cmsgpack.unpack('\\221\\255\\255\\255\\255\\1\\2\\3')", "Missing bytes"),
    # 100,000 nested arrays
    ("return cmsgpack.unpack(string.rep('\\145', 100000) .. '\\1')", "Bad data format"),
    # a struct format claiming two billion bytes of three
    ("return struct.unpack('c2000000000', 'abc')", "data string too short"),
    # a 4 MB format string: charged by its size
    ("return struct.size(string.rep('b', 4000000))", "budget"),
]


@pytest.mark.parametrize(("script", "error"), HOSTILE)
def test_hostile_library_input_is_bounded(script: str, error: str) -> None:
    client = MachineClient(clock=FakeClock())
    started = time.monotonic()
    reply = client.call("EVAL", script, "0")
    assert isinstance(reply, ErrorReply) and error in reply.message, reply
    assert time.monotonic() - started < 5


def test_the_libraries_round_trip_and_work_in_functions() -> None:
    client = MachineClient(clock=FakeClock())
    body = "return cjson.encode(cmsgpack.unpack(cmsgpack.pack(cjson.decode(ARGV[1]))))"
    assert client.call("EVAL", body, "0", '{"a":[1,2.5,"x"]}') == Bulk(b'{"a":[1,2.5,"x"]}')
    library = (
        "#!lua name=libs\n"
        "redis.register_function('mask', function(keys, args)\n"
        "  return bit.band(tonumber(args[1]), 0xff)\nend)"
    )
    assert client.call("FUNCTION", "LOAD", library) == Bulk(b"libs")
    assert client.call("FCALL", "mask", "0", "4660") == Integer(0x34)
