"""A downstream FastStream service reads metastream's events, typed, in a few lines."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import redis
from faststream.redis import RedisBroker, StreamSub

from metastream.config import Settings
from metastream.producer import Producer
from metastream.schemas import (
    AnyEvent,
    ById,
    MetadataLogged,
    RunStarted,
    StorageSize,
    Uri,
    encode_event,
    prepare_metadata,
)
from metastream.subscriber import decode_message


async def test_a_faststream_service_receives_typed_events(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    run_id = uuid.uuid4()
    sent = [
        RunStarted(run_id=run_id, name="nightly", pipeline_name="training"),
        MetadataLogged(
            target=ById(kind="pipeline_run", id=run_id),
            metadata=prepare_metadata({"source": Uri("s3://b/d"), "size": StorageSize(7)}),
        ),
    ]
    producer = Producer(
        Settings.from_env({"METASTREAM_HOME": str(tmp_path)}), redis_url=redis_url, stream=stream
    )
    for event in sent:
        producer.publish(encode_event(event))
    assert producer.flush(10)
    producer.close()
    # The service's own group, at 0: it also sees what was published before it started.
    redis_client.xgroup_create(stream, "alerts", id="0", mkstream=True)

    received: list[AnyEvent] = []
    broker = RedisBroker(redis_url, serializer=None)

    @broker.subscriber(
        stream=StreamSub(stream, group="alerts", consumer="alerts-1"), decoder=decode_message
    )
    async def on_event(event: AnyEvent) -> None:
        received.append(event)

    async with broker:
        await broker.start()
        for _ in range(200):
            if len(received) == len(sent):
                break
            await asyncio.sleep(0.02)
    assert received == sent
    metadata = received[1]
    assert isinstance(metadata, MetadataLogged)
    assert type(metadata.metadata["source"]) is Uri
    assert type(metadata.metadata["size"]) is StorageSize
