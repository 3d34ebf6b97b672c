"""The consumer's Redis wire (``consumer/wire.py``): hiredis packing and raw XREADGROUP replies."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from metastream.consumer import wire
from metastream.consumer.entries import DATA_KEY, Entry, parse_batch

ARGS = [
    ("XACK", "events", "metastream", b"1-0", b"2-5"),
    (b"XADD", b"s", b"*", "__data__", b"\x00\xff" * 40),
    ("CONFIG GET", "maxmemory"),
    (b"SET", "k", 12, 1.5, -(2**70), memoryview(b"view"), "é"),
]


@pytest.mark.parametrize("args", ARGS)
def test_hiredis_packs_what_redis_py_packs(args: tuple[object, ...]) -> None:
    ours = b"".join(wire.PackingConnection().pack_command(*args))
    theirs = b"".join(Connection().pack_command(*args))
    assert ours == theirs


@pytest.mark.parametrize("bad", [True, None])
def test_unsendable_arguments_are_refused_as_redis_py_refuses_them(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        wire.PackingConnection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        wire.PackingUnixConnection().pack_command("SET", "k", bad)


def test_what_only_redis_py_packs_is_packed_as_redis_py_packs_it() -> None:
    args = ("SET", "k", bytearray(b"x"))  # hiredis refuses a bytearray; redis-py sends it
    theirs = b"".join(Connection().pack_command(*args))
    assert b"".join(wire.PackingConnection().pack_command(*args)) == theirs
    assert b"".join(wire.PackingUnixConnection().pack_command(*args)) == theirs


def test_the_connection_class_follows_the_url_scheme() -> None:
    assert wire.connection_class("redis://:pw@127.0.0.1:1234/0") is wire.PackingConnection
    assert wire.connection_class("unix:///tmp/redis.sock?db=0") is wire.PackingUnixConnection
    assert wire.connection_class("rediss://127.0.0.1:1234/0") is None
    assert wire.broker_options("rediss://127.0.0.1:1234/0") == {}


def test_raw_replies_become_stream_entry_pairs_in_both_protocols() -> None:
    entries = [[b"1-0", [DATA_KEY, b"body"]]]
    assert wire.raw_xreadgroup([[b"s", entries]]) == [[b"s", entries]]  # RESP2
    assert wire.raw_xreadgroup({b"s": entries}) == [(b"s", entries)]  # RESP3
    assert wire.raw_xreadgroup(None) == []
    assert wire.raw_xreadgroup({}) == []


def test_entries_read_the_same_from_a_raw_list_and_from_a_dict() -> None:
    raw = Entry(b"1-0", [DATA_KEY, b"body"])
    parsed = Entry(b"1-0", {DATA_KEY: b"body"})
    assert raw.data == parsed.data == b"body"
    assert raw.field_map() == parsed.field_map() == {DATA_KEY: b"body"}
    other = Entry(b"2-0", [b"a", b"1", DATA_KEY, b"body", b"b", b"2"])
    assert other.data == b"body"
    assert other.field_map() == {b"a": b"1", DATA_KEY: b"body", b"b": b"2"}
    assert Entry(b"3-0", [b"a", b"1"]).data is None
    assert Entry(b"4-0", None).data is None
    assert Entry(b"4-0", None).field_map() == {}


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_real_server_round_trip_reads_raw_entries_and_acks_them(
    redis_url: str, protocol: int
) -> None:
    stream = f"wire:{uuid.uuid4().hex}"
    client = wire.client(redis_url)
    if protocol == 3:
        client = aredis.Redis.from_pool(
            aredis.ConnectionPool.from_url(
                redis_url, protocol=3, connection_class=wire.PackingConnection
            )
        )
    wire.install(client)
    try:
        await client.xgroup_create(stream, "g", id="0", mkstream=True)
        ids = [
            await client.xadd(stream, {"__data__": b"e%d" % i, **({"x": "y"} if i else {})})
            for i in range(3)
        ]
        reply = await client.xreadgroup("g", "c", {stream: ">"}, count=10)
        ((name, raw),) = reply
        assert name == stream.encode()
        message = {"message_ids": [e[0] for e in raw], "data": [e[1] for e in raw]}
        batch = await parse_batch(message)  # type: ignore[arg-type]
        entries: list[Entry] = batch.body  # type: ignore[assignment]
        assert [e.id for e in entries] == ids
        assert [e.data for e in entries] == [b"e0", b"e1", b"e2"]
        assert entries[1].field_map() == {DATA_KEY: b"e1", b"x": b"y"}
        assert await client.xack(stream, "g", *ids) == 3
        assert (await client.xpending(stream, "g"))["pending"] == 0
    finally:
        await client.delete(stream)
        await client.aclose()
