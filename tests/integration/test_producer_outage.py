"""The producer while its Redis goes away, or stops answering, in the middle of a stream."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.producer import Producer
from metastream.schemas import ById, MetadataLogged, decode_event, encode_event, prepare_metadata
from metastream.stack.server import RedisServer, free_port
from tests.integration.child_producers import fresh_warning
from tests.streams import eventually

pytestmark = pytest.mark.redis

__all__ = ["fresh_warning"]  # an autouse fixture


def event_ids_in(url: str, stream: str) -> Counter[bytes]:
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrange(stream)
    finally:
        client.close()
    return Counter(decode_event(fields[DATA_FIELD.encode()]).event_id for _, fields in entries)


def test_redis_stopped_and_restarted_while_publishing(
    tmp_path: Path, settings: Settings, stream: str
) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "redis", port=port)
    server.start()
    producer = Producer(settings.with_(linger_ms=1), redis_url=server.url, stream=stream)
    target = ById(kind="step_run", id=uuid.uuid4())
    published: list[bytes] = []
    slowest = 0.0
    running = True

    def publish() -> None:  # a step that keeps logging, whatever happens to Redis
        nonlocal slowest
        i = 0
        while running:
            event = MetadataLogged(target=target, metadata=prepare_metadata({"i": i}))
            started = time.perf_counter()
            producer.publish(encode_event(event))
            slowest = max(slowest, time.perf_counter() - started)
            published.append(event.event_id)
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        time.sleep(0.3)
        server.stop()  # Redis goes away mid-stream...
        time.sleep(0.4)
        server = RedisServer(tmp_path / "redis", port=port)  # ...and comes back, same data
        server.start()
        time.sleep(0.3)
        running = False
        publisher.join()
        assert eventually(lambda: producer.flush(1), timeout=20), producer.stats
        arrived = event_ids_in(server.url, stream)
        stats = producer.stats
    finally:
        running = False
        producer.close(timeout=1)
        server.stop()

    duplicates = sum(n - 1 for n in arrived.values())
    missing = set(published) - set(arrived)
    assert not missing, (
        f"{len(missing)} of {len(published)} events lost; {duplicates} duplicates; {stats}"
    )
    assert set(arrived) == set(published), f"{duplicates} duplicates"
    assert stats.spooled > 0, stats
    assert stats.resent == stats.spooled, stats
    assert stats.queued == len(published)
    assert slowest < 1.0, f"one publish took {slowest:.3f} s while Redis was down"
    print(f"{len(published)} events, {duplicates} duplicates, {stats}")


def test_a_stalled_redis_sends_the_overflow_to_the_spool_and_loses_nothing(
    tmp_path: Path, settings: Settings, stream: str
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    admin = redis.Redis.from_url(server.url)
    limit = 64 * 1024
    producer = Producer(
        settings.with_(max_queue_bytes=limit, linger_ms=1), redis_url=server.url, stream=stream
    )
    target = ById(kind="step_run", id=uuid.uuid4())
    bodies = [
        encode_event(MetadataLogged(target=target, metadata={"i": i, "pad": "x" * 400}))
        for i in range(4000)
    ]
    try:
        producer.publish(bodies[0])
        assert producer.flush(5)
        admin.execute_command("CLIENT", "PAUSE", 1500, "WRITE")  # Redis stops taking writes
        started = time.perf_counter()
        for body in bodies[1:]:
            producer.publish(body)
        elapsed = time.perf_counter() - started
        assert eventually(lambda: producer.stats.spooled > 0, timeout=1), producer.stats
        assert eventually(lambda: producer.flush(1), timeout=20), producer.stats
        arrived = Counter(
            fields[DATA_FIELD.encode()] for _, fields in admin.xrange(stream, count=100_000)
        )
        stats = producer.stats
    finally:
        producer.close(timeout=1)
        admin.close()
        server.stop()

    assert elapsed < 1.5, f"publish waited on the stalled Redis ({elapsed:.2f} s)"
    assert set(arrived) == set(bodies), f"{len(set(bodies) - set(arrived))} lost"
    assert stats.spooled > 0
    assert stats.resent == stats.spooled
    assert stats.sent + stats.spooled == len(bodies)
    assert not list(settings.spool_dir.glob("*.spool"))
