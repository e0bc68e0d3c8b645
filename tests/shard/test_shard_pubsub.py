"""The node's pub/sub registry (pure): confirmations and counts as Redis 7.0 sends them,
who receives a message, PUBSUB answers, the subscriber-mode rule and the output limit.
Replies are checked as RESP bytes, taken from redis-server 7.0.15."""

from __future__ import annotations

from cairn.resp.codec import encode
from cairn.resp.reply import Reply
from cairn.shard.pubsub import (
    OutputLimit,
    PubSubRegistry,
    full_name,
    pubsub_command,
    shard_channels_error,
    subscriber_mode_error,
    subscriber_ping,
)


def wire(replies: list[Reply] | Reply, protocol: int = 2) -> bytes:
    items = replies if isinstance(replies, list) else [replies]
    return b"".join(encode(r, protocol) for r in items)


def test_subscribe_confirms_each_channel_with_the_running_count() -> None:
    reg = PubSubRegistry()
    got = wire(reg.subscribe(1, [b"a", b"b", b"a"]))
    assert got == (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n"
    )
    assert wire(reg.psubscribe(1, [b"h*"])) == b"*3\r\n$10\r\npsubscribe\r\n$2\r\nh*\r\n:3\r\n"


def test_resp3_confirmations_are_pushes_and_a_null_channel_is_underscore() -> None:
    reg = PubSubRegistry()
    assert wire(reg.subscribe(1, [b"ch"]), 3) == b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    assert wire(reg.unsubscribe(1, []), 3) == b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"
    assert wire(reg.unsubscribe(1, []), 3) == b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"


def test_unsubscribe_without_subscriptions_confirms_once_with_null() -> None:
    reg = PubSubRegistry()
    assert wire(reg.unsubscribe(7, [])) == b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    assert wire(reg.punsubscribe(7, [])) == b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n"
    assert (
        wire(reg.unsubscribe(7, [b"nope"])) == b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnope\r\n:0\r\n"
    )
    assert not reg.subscribed(7)


def test_unsubscribe_all_leaves_patterns_and_counts_them() -> None:
    reg = PubSubRegistry()
    reg.subscribe(1, [b"a", b"b"])
    reg.psubscribe(1, [b"p*"])
    got = wire(reg.unsubscribe(1, []))
    assert got == (
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
    )
    assert reg.subscribed(1)
    assert wire(reg.punsubscribe(1, [])) == b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n"
    assert not reg.subscribed(1)
    assert reg.channels() == [] and reg.numpat() == 0


def test_deliveries_go_to_channel_then_pattern_subscribers() -> None:
    reg = PubSubRegistry()
    reg.subscribe(1, [b"news"])
    reg.psubscribe(1, [b"n*"])
    reg.psubscribe(2, [b"n?ws", b"x*"])
    got = [(d.client, wire(d.push)) for d in reg.deliveries(b"news", b"hi")]
    assert got == [
        (1, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"),
        (1, b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"),
        (2, b"*4\r\n$8\r\npmessage\r\n$4\r\nn?ws\r\n$4\r\nnews\r\n$2\r\nhi\r\n"),
    ]
    assert reg.deliveries(b"other", b"x") == []
    push = reg.deliveries(b"news", b"hi")[0].push
    assert wire(push, 3) == b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"


def test_forget_removes_every_trace_of_a_client() -> None:
    reg = PubSubRegistry()
    reg.subscribe(1, [b"a"])
    reg.subscribe(2, [b"a"])
    reg.psubscribe(1, [b"*"])
    reg.forget(1)
    assert [d.client for d in reg.deliveries(b"a", b"m")] == [2]
    assert reg.numsub(b"a") == 1 and reg.numpat() == 0
    reg.forget(2)
    assert reg.channels() == []


def test_pubsub_subcommands() -> None:
    reg = PubSubRegistry()
    reg.subscribe(1, [b"ch", b"cz"])
    reg.subscribe(2, [b"ch"])
    reg.psubscribe(1, [b"p*"])
    reg.psubscribe(2, [b"p*"])
    assert wire(pubsub_command(reg, [b"NUMPAT"])) == b":1\r\n"
    assert wire(pubsub_command(reg, [b"channels", b"*h"])) == b"*1\r\n$2\r\nch\r\n"
    assert wire(pubsub_command(reg, [b"CHANNELS"])) == b"*2\r\n$2\r\nch\r\n$2\r\ncz\r\n"
    numsub = wire(pubsub_command(reg, [b"NUMSUB", b"ch", b"zz"]))
    assert numsub == b"*4\r\n$2\r\nch\r\n:2\r\n$2\r\nzz\r\n:0\r\n"
    assert wire(pubsub_command(reg, [b"numsub"])) == b"*0\r\n"


def test_pubsub_errors_are_redis_texts() -> None:
    reg = PubSubRegistry()
    assert (
        wire(pubsub_command(reg, [b"FOO"]))
        == b"-ERR unknown subcommand 'FOO'. Try PUBSUB HELP.\r\n"
    )
    assert (
        wire(pubsub_command(reg, [b"CHANNELS", b"a", b"b"]))
        == b"-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. "
        b"Try PUBSUB HELP.\r\n"
    )
    assert (
        wire(pubsub_command(reg, [b"NUMPAT", b"x"]))
        == b"-ERR wrong number of arguments for 'pubsub|numpat' command\r\n"
    )
    assert wire(pubsub_command(reg, [b"help"])).startswith(
        b"*14\r\n+PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"
    )


def test_subscriber_mode_texts() -> None:
    assert wire(subscriber_ping([b"ping"])) == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert wire(subscriber_ping([b"ping", b"x"])) == b"*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
    assert full_name("get", [b"GET", b"k"]) == "get"
    assert full_name("client", [b"CLIENT", b"LIST"]) == "client|list"
    assert wire(subscriber_mode_error("config|get")) == (
        b"-ERR Can't execute 'config|get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
        b"QUIT / RESET are allowed in this context\r\n"
    )


def test_output_limit_hard_at_once_soft_after_its_seconds() -> None:
    limit = OutputLimit(hard_bytes=100, soft_bytes=50, soft_seconds=10)
    assert limit.over(101, 0.0)
    assert not limit.over(50, 0.5)
    assert not limit.over(60, 1.0)  # over soft: the clock starts
    assert not limit.over(60, 11.0)
    assert not limit.over(40, 11.5)  # back under: the clock is reset
    assert not limit.over(60, 12.0)
    assert not limit.over(60, 22.0)
    assert limit.over(60, 22.5)


def test_shard_channels_count_apart_and_keep_subscriber_mode() -> None:
    reg = PubSubRegistry()
    got = wire(reg.ssubscribe(1, [b"a", b"b"]))
    assert got == (
        b"*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n"
    )
    assert wire(reg.subscribe(1, [b"c"])) == b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    assert wire(reg.sunsubscribe(1, [])) == (
        b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    )
    assert reg.subscribed(1)  # still on channel c: subscriber mode lasts
    assert wire(reg.sunsubscribe(1, [])) == b"*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n"
    reg.unsubscribe(1, [])
    assert not reg.subscribed(1)


def test_shard_messages_reach_shard_subscribers_only() -> None:
    reg = PubSubRegistry()
    reg.ssubscribe(1, [b"s{t}"])
    reg.subscribe(2, [b"s{t}"])
    reg.psubscribe(3, [b"*"])
    got = [(d.client, wire(d.push)) for d in reg.shard_deliveries(b"s{t}", b"hi")]
    assert got == [(1, b"*3\r\n$8\r\nsmessage\r\n$4\r\ns{t}\r\n$2\r\nhi\r\n")]
    assert [d.client for d in reg.deliveries(b"s{t}", b"hi")] == [2, 3]
    assert wire(pubsub_command(reg, [b"SHARDCHANNELS"])) == b"*1\r\n$4\r\ns{t}\r\n"
    assert wire(pubsub_command(reg, [b"SHARDCHANNELS", b"x*"])) == b"*0\r\n"
    numsub = wire(pubsub_command(reg, [b"SHARDNUMSUB", b"s{t}", b"zz"]))
    assert numsub == b"*4\r\n$4\r\ns{t}\r\n:1\r\n$2\r\nzz\r\n:0\r\n"
    reg.forget(1)
    assert reg.shard_deliveries(b"s{t}", b"x") == []


def test_shard_channels_must_share_a_slot() -> None:
    assert shard_channels_error([b"a{t}", b"b{t}"]) is None
    error = shard_channels_error([b"a", b"b"])
    assert error is not None
    assert wire(error) == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
