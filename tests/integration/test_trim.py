"""Trimming the stream never removes an entry that some consumer group has not acked."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aredis

from metastream.config import Settings
from metastream.consumer import oldest_needed, trim_acked
from tests.streams import (
    consumer_settings,
    fill,
    head,
    pending,
    run_events,
    running_consumer,
    wait_for,
)

pytestmark = pytest.mark.redis


def ids_of(client: redis.Redis, stream: str) -> list[bytes]:
    return [entry_id for entry_id, _ in client.xrange(stream)]


async def test_trim_stops_at_the_oldest_entry_a_lagging_group_still_needs(
    stream: str, redis_url: str, redis_client: redis.Redis
) -> None:
    ids = fill(redis_client, stream, [b"x%d" % i for i in range(100)])
    redis_client.xgroup_create(stream, "fast", id="0")
    redis_client.xgroup_create(stream, "slow", id="0")
    fast = redis_client.xreadgroup("fast", "f", {stream: ">"})[0][1]
    redis_client.xack(stream, "fast", *[i for i, _ in fast])
    slow = redis_client.xreadgroup("slow", "s", {stream: ">"}, count=30)[0][1]
    redis_client.xack(stream, "slow", *[i for i, _ in slow[:20]])  # 20..29 pending, 30.. unread

    client = aredis.Redis.from_url(redis_url)
    try:
        assert await oldest_needed(client, stream) == ids[20].decode()
        assert await trim_acked(client, stream) == 20
        assert ids_of(redis_client, stream) == ids[20:]
        assert await trim_acked(client, stream) == 0  # idempotent

        # The lagging group acks what it read: the bound moves to its first unread entry.
        redis_client.xack(stream, "slow", *[i for i, _ in slow[20:]])
        assert await trim_acked(client, stream, retention=5) == 5  # keeps 25..29
        assert ids_of(redis_client, stream) == ids[25:]
        assert await trim_acked(client, stream) == 5
        assert ids_of(redis_client, stream) == ids[30:]

        # Whatever was trimmed, the lagging group still reads every entry it has not seen.
        rest = redis_client.xreadgroup("slow", "s", {stream: ">"})[0][1]
        assert [i for i, _ in rest] == ids[30:]
        # It has now read everything but acked nothing: nothing more may go.
        assert await trim_acked(client, stream) == 0
        assert ids_of(redis_client, stream) == ids[30:]
    finally:
        await client.aclose()


async def test_a_stream_without_groups_is_never_trimmed(
    stream: str, redis_url: str, redis_client: redis.Redis
) -> None:
    fill(redis_client, stream, [b"x"] * 10)
    client = aredis.Redis.from_url(redis_url)
    try:
        assert await oldest_needed(client, stream) is None
        assert await trim_acked(client, stream) == 0
        assert await trim_acked(client, f"{stream}:missing") == 0
    finally:
        await client.aclose()
    assert redis_client.xlen(stream) == 10


async def test_the_consumer_trims_periodically_but_not_past_another_groups_unacked_entries(
    settings: Settings, stream: str, redis_url: str, redis_client: redis.Redis
) -> None:
    s = consumer_settings(settings, stream, redis_url, max_records=100)
    bodies = run_events(300)
    redis_client.xgroup_create(stream, "downstream", id="0", mkstream=True)
    ids = fill(redis_client, stream, bodies)
    taken = redis_client.xreadgroup("downstream", "d", {stream: ">"}, count=120)[0][1]
    redis_client.xack(stream, "downstream", *[i for i, _ in taken[:100]])

    async with running_consumer(s, housekeeping_interval=0.05):
        await wait_for(lambda: head(s.db) == 300)
        await wait_for(lambda: pending(redis_client, stream, s.group) == 0)
        await wait_for(lambda: redis_client.xlen(stream) == 200)
    assert ids_of(redis_client, stream) == ids[100:]  # 100..119 pending downstream, 120.. unread
