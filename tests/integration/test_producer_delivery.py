"""The producer against a real Redis: what arrives, in which order, with which counters."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.producer import Producer
from metastream.producer.spool import SUFFIX
from metastream.schemas import ById, MetadataLogged, decode_event, encode_event, prepare_metadata
from metastream.stack.server import RedisServer, free_port
from tests.integration.child_producers import fresh_warning
from tests.streams import eventually

pytestmark = pytest.mark.redis

MakeProducer = Callable[..., Producer]


__all__ = ["fresh_warning"]  # an autouse fixture


@pytest.fixture
def make_producer(settings: Settings, stream: str) -> Iterator[MakeProducer]:
    made: list[Producer] = []

    def make(settings_: Settings | None = None, **kwargs: Any) -> Producer:
        kwargs.setdefault("stream", stream)
        producer = Producer(settings_ or settings, **kwargs)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        producer.close(timeout=1)


def stream_bodies(client: redis.Redis, stream: str) -> list[bytes]:
    """The bodies in ``stream``, in stream order; every entry must have exactly one field."""
    entries = client.xrange(stream)
    fields = {tuple(sorted(f)) for _, f in entries}
    assert fields <= {(DATA_FIELD.encode(),)}, f"unexpected fields: {fields}"
    return [f[DATA_FIELD.encode()] for _, f in entries]


def events(n: int, tag: str = "e") -> list[bytes]:
    target = ById(kind="step_run", id=uuid.uuid4())
    return [
        encode_event(MetadataLogged(target=target, metadata=prepare_metadata({tag: i, "x": 0.5})))
        for i in range(n)
    ]


def test_every_event_arrives_once_in_order_with_one_field(
    make_producer: MakeProducer, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = make_producer(redis_url=redis_url)
    bodies = events(20_000)

    for body in bodies:
        producer.publish(body)

    assert producer.flush(30) is True
    assert stream_bodies(redis_client, stream) == bodies


def test_counters_after_a_clean_run(
    make_producer: MakeProducer, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = make_producer(redis_url=redis_url)
    for body in events(300):
        producer.publish(body)
    assert producer.flush(10)

    stats = producer.stats
    assert (stats.queued, stats.sent, stats.spooled, stats.resent) == (300, 300, 0, 0)
    assert (stats.failed, stats.dropped, stats.pending, stats.pending_bytes) == (0, 0, 0, 0)
    assert (stats.spool_backlog, stats.connected) == (0, True)
    assert redis_client.xlen(stream) == 300


def test_a_small_batch_size_and_no_linger_still_deliver_in_order(
    make_producer: MakeProducer,
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    producer = make_producer(settings.with_(batch_size=7, linger_ms=0), redis_url=redis_url)
    bodies = events(500)
    for i, body in enumerate(bodies):
        producer.publish(body)
        if i % 50 == 0:
            time.sleep(0.001)

    assert producer.flush(10)
    assert stream_bodies(redis_client, stream) == bodies


def test_flush_does_not_wait_for_the_linger(
    make_producer: MakeProducer,
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    producer = make_producer(settings.with_(linger_ms=60_000), redis_url=redis_url)
    for body in events(10):
        producer.publish(body)
    time.sleep(0.05)
    assert redis_client.xlen(stream) == 0  # lingering: a batch of 10 is not full

    started = time.monotonic()
    assert producer.flush(10)
    assert time.monotonic() - started < 5
    assert redis_client.xlen(stream) == 10


def test_a_full_batch_goes_out_without_waiting_for_the_linger(
    make_producer: MakeProducer,
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    producer = make_producer(settings.with_(linger_ms=60_000, batch_size=100), redis_url=redis_url)
    for body in events(100):
        producer.publish(body)

    assert eventually(lambda: redis_client.xlen(stream) == 100, timeout=5)


def test_many_threads_publishing_at_once(
    make_producer: MakeProducer, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = make_producer(redis_url=redis_url)
    per_thread = {t: events(2_000, tag=f"t{t}") for t in range(8)}
    start = threading.Barrier(8)

    def publish(t: int) -> None:
        start.wait()
        for body in per_thread[t]:
            producer.publish(body)

    threads = [threading.Thread(target=publish, args=(t,)) for t in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert producer.flush(30)
    arrived = stream_bodies(redis_client, stream)
    assert Counter(arrived) == Counter(b for bodies in per_thread.values() for b in bodies)
    for bodies in per_thread.values():  # each thread's own events keep their order
        wanted = set(bodies)
        assert [b for b in arrived if b in wanted] == bodies
    assert producer.stats.queued == 16_000


async def test_publishing_from_asyncio(
    make_producer: MakeProducer, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = make_producer(redis_url=redis_url)
    per_task = [events(500, tag=f"task{t}") for t in range(5)]

    async def task(bodies: list[bytes]) -> None:
        for i, body in enumerate(bodies):
            producer.publish(body)  # sync, never blocks: fine inside a coroutine
            if i % 100 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(task(bodies) for bodies in per_task))
    assert await asyncio.to_thread(producer.flush, 10)

    assert Counter(stream_bodies(redis_client, stream)) == Counter(b for t in per_task for b in t)


def test_spool_from_an_unreachable_time_is_sent_in_order_and_removed(
    make_producer: MakeProducer,
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    offline = make_producer(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    bodies = events(3_000)
    for body in bodies:
        offline.publish(body)
    assert offline.flush(10) is False
    offline.close(timeout=1)
    assert redis_client.xlen(stream) == 0
    assert len(list(settings.spool_dir.glob(f"*{SUFFIX}"))) == 1

    online = make_producer(redis_url=redis_url)  # claims the orphan as it starts

    assert eventually(lambda: redis_client.xlen(stream) >= len(bodies))
    assert stream_bodies(redis_client, stream) == bodies
    assert eventually(lambda: not list(settings.spool_dir.iterdir()))
    assert online.stats.resent == len(bodies)
    assert offline.stats.spooled == len(bodies)


def test_the_local_stack_is_found_when_it_comes_up(
    make_producer: MakeProducer,
    settings: Settings,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    stream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = make_producer()  # no URL anywhere: the local stack, which is not up yet
    before = events(100, tag="before")
    for body in before:
        producer.publish(body)
    assert producer.flush(5) is False
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "metastream up" in warning.getMessage()

    settings.home.mkdir(parents=True, exist_ok=True)  # what `metastream up` records
    settings.stack_file.write_text(
        json.dumps({"redis_url": redis_server.url, "server_pid": redis_server.pid})
    )
    after = events(100, tag="after")
    for body in after:
        producer.publish(body)

    assert eventually(lambda: redis_client.xlen(stream) == 200, timeout=10)
    assert producer.flush(5)
    assert Counter(stream_bodies(redis_client, stream)) == Counter(before + after)
    stats = producer.stats  # "after" went straight out, or through the spool if published
    assert stats.resent >= 100  # before the producer looked for the stack again
    assert stats.sent + stats.resent == 200


def test_refused_events_are_spooled_and_sent_once_redis_accepts_them(
    make_producer: MakeProducer,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.set(stream, "not a stream")  # every XADD fails with WRONGTYPE
    producer = make_producer(redis_url=redis_url)
    bodies = events(50)
    for body in bodies:
        producer.publish(body)

    assert eventually(lambda: producer.stats.spooled == 50 and producer.stats.failed >= 2)
    assert any("WRONGTYPE" in r.getMessage() for r in caplog.records if r.levelno >= 40)
    redis_client.delete(stream)

    assert eventually(lambda: redis_client.exists(stream) == 1 and redis_client.xlen(stream) >= 50)
    assert producer.flush(10)
    assert Counter(stream_bodies(redis_client, stream)) == Counter(bodies)


def test_events_the_spool_cannot_take_wait_in_memory_and_are_sent_later(
    make_producer: MakeProducer,
    settings: Settings,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    producer = make_producer(spool_dir=blocked / "spool")  # neither Redis nor a spool
    bodies = events(30)
    for body in bodies:
        producer.publish(body)
    assert producer.flush(0.5) is False
    assert producer.stats.pending == 30

    settings.home.mkdir(parents=True, exist_ok=True)
    settings.stack_file.write_text(
        json.dumps({"redis_url": redis_server.url, "server_pid": redis_server.pid})
    )

    assert eventually(lambda: redis_client.xlen(stream) == 30, timeout=10)
    assert stream_bodies(redis_client, stream) == bodies
    assert producer.flush(5)
    assert producer.stats.pending == 0


def test_events_decode_as_what_was_published(
    make_producer: MakeProducer, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = make_producer(redis_url=redis_url)
    logged = {"pid": os.getpid(), "t": (1, 2), "s": {3}}
    event = MetadataLogged(
        target=ById(kind="pipeline_run", id=uuid.uuid4()), metadata=prepare_metadata(logged)
    )
    producer.publish(encode_event(event))
    assert producer.flush(5)

    (body,) = stream_bodies(redis_client, stream)
    assert body == encode_event(event)  # the bytes as they were, in the one field
    decoded = decode_event(body)
    assert isinstance(decoded, MetadataLogged)
    assert (decoded.event_id, decoded.metadata) == (event.event_id, logged)
