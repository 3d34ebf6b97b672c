"""Delivery counts of claimed entries are found however many others are pending between them."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aredis

from metastream.consumer.entries import entries_of
from metastream.consumer.group import PENDING_PAGE, delivery_counts

pytestmark = pytest.mark.redis


async def test_counts_are_found_across_more_pending_entries_than_a_page(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    stream = f"counts:{uuid.uuid4().hex}"
    try:
        await client.xgroup_create(stream, "g", id="0", mkstream=True)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(PENDING_PAGE * 2 + 50):
                pipe.xadd(stream, {"__data__": b"%d" % i})
            ids = await pipe.execute()
        await client.xreadgroup("g", "c", {stream: ">"}, count=len(ids))  # all pending, once
        picked = [ids[0], ids[PENDING_PAGE + 7], ids[-1]]
        # claimed again by the same consumer: delivered twice now, others still pending between
        claimed = entries_of(
            await client.xclaim(stream, "g", "c", min_idle_time=0, message_ids=picked)
        )
        assert [e.id for e in claimed] == picked
        counts = await delivery_counts(client, stream, "g", "c", claimed)
        assert counts == dict.fromkeys(picked, 2)
    finally:
        await client.delete(stream)
        await client.aclose()
