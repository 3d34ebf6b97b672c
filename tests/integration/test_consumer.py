"""The consumer against a real Redis: events reach the views once, bad entries are set aside.

Each test has its own stream (and dead-letter stream) and database; the
consumer runs in the test's event loop.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from metastream.cli import main
from metastream.config import Settings
from metastream.consumer import iter_dead_letters, retry_dead_letters
from metastream.eventlog import base as log_module  # decode_bodies: the consumer's decoder
from metastream.query import Reader
from metastream.schemas.codec import decode_incoming
from tests.streams import (
    assert_exactly_once,
    consumer_settings,
    fill,
    head,
    pending,
    run_events,
    running_consumer,
    views_at_head,
    wait_for,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def s(settings: Settings, stream: str, redis_url: str) -> Settings:
    return consumer_settings(settings, stream, redis_url, max_records=100, claim_idle_ms=300)


async def test_entries_added_to_the_stream_reach_the_views(
    s: Settings, redis_client: redis.Redis
) -> None:
    run_id = uuid.uuid4()
    before = run_events(120, run_id, name="before-start")  # published before any consumer
    fill(redis_client, s.stream, before)
    async with running_consumer(s) as consumer:
        after = run_events(80, name="after-start")
        fill(redis_client, s.stream, after)
        await wait_for(lambda: head(s.db) == 200)
        assert consumer.ingestor is not None
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
        await wait_for(lambda: views_at_head(s.db))  # the projector, the consumer's child
    assert_exactly_once(s.db, before + after, redis_client, s)
    with Reader(s.db) as reader:
        run = reader.run("before-start")
        assert run.id == run_id
        assert run.run_metadata["i"] == 119
        assert reader.run("after-start").run_metadata["i"] == 79
    assert consumer.ingestor.stats.new == 200


async def test_a_malformed_entry_is_dead_lettered_and_the_rest_of_its_batch_ingested(
    s: Settings, redis_client: redis.Redis
) -> None:
    good = run_events(10)
    fill(redis_client, s.stream, good[:5])
    garbage_id = redis_client.xadd(s.stream, {"__data__": b"\xc1 not msgpack"})
    foreign_id = redis_client.xadd(s.stream, {"payload": b"{}", "kind": b"json"})
    fill(redis_client, s.stream, good[5:])
    async with running_consumer(s):
        await wait_for(lambda: head(s.db) == 10)
        await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 2)
    assert_exactly_once(s.db, good, redis_client, s)
    dead = {d.entry_id: d for d in iter_dead_letters(redis_client, s.dead_letter_stream)}
    assert set(dead) == {garbage_id.decode(), foreign_id.decode()}
    garbage = dead[garbage_id.decode()]
    assert garbage.reason.startswith("cannot decode")
    assert garbage.stream == s.stream
    assert garbage.group == s.group
    assert garbage.original == {b"__data__": b"\xc1 not msgpack"}
    foreign = dead[foreign_id.decode()]
    assert "no __data__ field" in foreign.reason
    assert foreign.original == {b"payload": b"{}", b"kind": b"json"}


async def test_a_dead_letter_retried_once_the_cause_is_fixed_reaches_the_log(
    s: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = run_events(6)
    unreadable = bodies[3]  # a consumer too old to read it, say

    def old_decoder(body: bytes) -> object:
        if body == unreadable:
            raise ValueError("unknown event type")
        return decode_incoming(body)

    monkeypatch.setattr(log_module, "decode_incoming", old_decoder)
    fill(redis_client, s.stream, bodies)
    async with running_consumer(s):
        await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 1)
        await wait_for(lambda: head(s.db) == 5)
        (dead,) = iter_dead_letters(redis_client, s.dead_letter_stream)
        assert dead.reason == "cannot decode: unknown event type"

        monkeypatch.setattr(log_module, "decode_incoming", decode_incoming)  # the fixed consumer
        ((retried, new_id),) = retry_dead_letters(redis_client, s.dead_letter_stream, [dead.id])
        assert retried.id == dead.id
        await wait_for(lambda: head(s.db) == 6)
    assert redis_client.xlen(s.dead_letter_stream) == 0
    assert redis_client.xrange(s.stream, min=new_id, max=new_id)[0][1] == {b"__data__": unreadable}
    assert_exactly_once(s.db, bodies, redis_client, s)


async def test_an_entry_delivered_often_is_not_dead_lettered_for_that_alone(
    s: Settings, redis_client: redis.Redis
) -> None:
    """Many deliveries mean its batch kept failing, most likely for the database's reasons.

    (An entry that fails alone is dead-lettered with its own exception:
    ``test_consumer_isolation.py``.)
    """
    bodies = run_events(3)
    redis_client.xgroup_create(s.stream, s.group, id="0", mkstream=True)
    ids = fill(redis_client, s.stream, bodies)
    # A consumer that took the entries and died; one of them had been retried often.
    redis_client.xreadgroup(s.group, "gone-1", {s.stream: ">"})
    redis_client.xclaim(
        s.stream, s.group, "gone-1", 0, [ids[2]], idle=60_000, retrycount=s.max_deliveries + 3
    )
    async with running_consumer(s) as consumer:
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert consumer.reclaimer is not None
    assert consumer.reclaimer.claimed == 3
    assert redis_client.xlen(s.dead_letter_stream) == 0
    assert_exactly_once(s.db, bodies, redis_client, s)


async def test_entries_left_pending_by_a_dead_consumer_are_reclaimed(
    s: Settings, redis_client: redis.Redis
) -> None:
    bodies = run_events(500)
    redis_client.xgroup_create(s.stream, s.group, id="0", mkstream=True)
    fill(redis_client, s.stream, bodies)
    # Another consumer of the group read 300 entries and died before acking them.
    taken = redis_client.xreadgroup(s.group, "other-host-1234", {s.stream: ">"}, count=300)
    assert len(taken[0][1]) == 300
    async with running_consumer(s) as consumer:
        await wait_for(lambda: head(s.db) == 500)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert consumer.reclaimer is not None
    assert consumer.reclaimer.claimed == 300
    assert_exactly_once(s.db, bodies, redis_client, s)
    # Nothing is left with the dead consumer, nor with this one.
    for c in redis_client.xinfo_consumers(s.stream, s.group):
        assert c["pending"] == 0


async def test_two_consumers_in_one_group_share_the_stream_exactly_once(
    s: Settings, redis_client: redis.Redis
) -> None:
    bodies = run_events(2000)
    fill(redis_client, s.stream, bodies[:1000])
    async with (
        running_consumer(s, name="replica-a") as a,
        running_consumer(s, name="replica-b") as b,
    ):
        fill(redis_client, s.stream, bodies[1000:])
        await wait_for(lambda: head(s.db) == 2000)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert a.ingestor is not None
    assert b.ingestor is not None
    assert a.ingestor.stats.entries + b.ingestor.stats.entries >= 2000
    assert_exactly_once(s.db, bodies, redis_client, s)


async def test_dead_letters_cli_lists_and_retries(
    settings: Settings,
    stream: str,
    redis_url: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The CLI reads the default dead-letter stream: keep it clean around this test.
    s = consumer_settings(settings, stream, redis_url)
    s = s.with_(dead_letter_stream=Settings.from_env({}).dead_letter_stream)
    redis_client.delete(s.dead_letter_stream)
    monkeypatch.setenv("METASTREAM_REDIS_URL", redis_url)
    monkeypatch.setenv("METASTREAM_STREAM", stream)
    try:
        bad = [b"\x00bad-1", b"\x00bad-2"]
        for body in bad:
            redis_client.xadd(stream, {"__data__": body})
        async with running_consumer(s):
            await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 2)
        capsys.readouterr()  # FastStream's own log lines

        assert main(["dead-letters", "list"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == ["ID", "REASON", "ORIGINAL", "ENTRY", "AGE"]
        assert len(out) == 3
        assert all(stream in line for line in out[1:])
        assert "cannot decode" in out[1]

        assert main(["dead-letters", "retry"]) == 1  # neither ids nor --all
        assert main(["dead-letters", "retry", "1-1"]) == 1  # no such dead letter
        capsys.readouterr()
        first = next(iter_dead_letters(redis_client, s.dead_letter_stream))
        assert main(["dead-letters", "retry", first.id]) == 0
        assert "retried 1 dead letter" in capsys.readouterr().out
        assert main(["dead-letters", "retry", "--all"]) == 0
        assert redis_client.xlen(s.dead_letter_stream) == 0
        assert [f[b"__data__"] for _, f in redis_client.xrange(stream)][-2:] == bad
        assert main(["dead-letters", "list"]) == 0
        assert "no dead letters" in capsys.readouterr().out
    finally:
        redis_client.delete(s.dead_letter_stream)


def test_consumer_without_redis_says_how_to_start_one(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["consume"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "metastream up" in err


async def test_consumers_long_gone_are_forgotten_but_never_with_entries_pending(
    stream: str, redis_url: str, redis_client: redis.Redis
) -> None:
    import redis.asyncio as aredis

    from metastream.consumer.group import forget_idle_consumers

    redis_client.xgroup_create(stream, "g", id="0", mkstream=True)
    redis_client.xadd(stream, {"__data__": b"x"})
    redis_client.xgroup_createconsumer(stream, "g", "gone-1")
    redis_client.xreadgroup("g", "gone-with-work-2", {stream: ">"})
    redis_client.xgroup_createconsumer(stream, "g", "me-3")
    client = aredis.Redis.from_url(redis_url)
    try:
        assert await forget_idle_consumers(client, stream, "g", keep="me-3") == []  # not idle
        assert await forget_idle_consumers(client, stream, "g", keep="me-3", idle_ms=0) == [
            "gone-1"
        ]
    finally:
        await client.aclose()
    names = {c["name"] for c in redis_client.xinfo_consumers(stream, "g")}
    assert names == {b"gone-with-work-2", b"me-3"}


async def test_a_batch_whose_transaction_fails_is_not_acked_and_comes_back(
    s: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metastream.errors import StoreError
    from metastream.eventlog import SqliteEventLog

    real_ingest = SqliteEventLog.append_encoded
    failures = []

    async def failing_once(self: SqliteEventLog, bodies: list[bytes]) -> object:
        if not failures:
            failures.append(len(bodies))
            raise StoreError("cannot write to the store: disk I/O error")
        return await real_ingest(self, bodies)

    monkeypatch.setattr(SqliteEventLog, "append_encoded", failing_once)
    bodies = run_events(50)
    fill(redis_client, s.stream, bodies)
    async with running_consumer(s) as consumer:
        await wait_for(lambda: head(s.db) == 50)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert failures == [50]
    assert consumer.reclaimer is not None
    assert consumer.reclaimer.claimed == 50  # the failed batch, taken over after claim_idle_ms
    assert redis_client.xlen(s.dead_letter_stream) == 0
    assert_exactly_once(s.db, bodies, redis_client, s)
