"""Producer → Redis → consumer → log, through failures: no event lost, none duplicated."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import redis

from metastream.config import Settings
from metastream.producer import Producer
from metastream.schemas import ById, MetadataLogged, encode_event, prepare_metadata
from metastream.stack.server import RedisServer, free_port
from tests.integration.child_producers import fresh_warning
from tests.streams import head, log_ids, start_consumer_process, stop_process, wait_for_sync

__all__ = ["fresh_warning"]  # an autouse fixture


def _reading(client: redis.Redis, s: Settings) -> bool:
    """Whether a consumer has joined the group (it reads from the stream)."""
    try:
        return bool(client.xinfo_consumers(s.stream, s.group))
    except redis.ResponseError:  # no stream or group yet
        return False


def test_redis_restarted_under_a_producer_and_a_consumer_every_event_once_in_the_log(
    tmp_path: Path, settings: Settings, stream: str
) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "redis", port=port)
    server.start()
    s = settings.with_(redis_url=server.url, stream=stream, claim_idle_ms=500)
    consumer = start_consumer_process(s, tmp_path / "consumer.log")
    client = redis.Redis.from_url(server.url)
    wait_for_sync(lambda: _reading(client, s), timeout=30, process=consumer)
    client.close()
    producer = Producer(s.with_(linger_ms=1), redis_url=server.url, stream=stream)
    target = ById(kind="step_run", id=uuid.uuid4())
    published: list[bytes] = []
    running = True

    def publish() -> None:
        i = 0
        while running:
            event = MetadataLogged(target=target, metadata=prepare_metadata({"i": i}))
            producer.publish(encode_event(event))
            published.append(event.event_id)
            i += 1
            if i % 20 == 0:
                time.sleep(0.001)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        time.sleep(0.5)
        server.stop()  # Redis goes away under both of them...
        time.sleep(0.5)
        server = RedisServer(tmp_path / "redis", port=port)  # ...and comes back with its AOF
        server.start()
        time.sleep(0.5)
        running = False
        publisher.join()
        wait_for_sync(lambda: producer.flush(1), timeout=30)
        # The events wait (their step is never registered), so they are not in
        # the views; they are in the log, each once.
        wait_for_sync(lambda: head(s.db) >= len(published), timeout=60, process=consumer)
        time.sleep(1.0)  # anything redelivered by now would show up as a second copy
        ids = log_ids(s.db)
    finally:
        running = False
        producer.close(timeout=1)
        code = stop_process(consumer)
        server.stop()
    assert len(ids) == len(set(ids)), "an event is in the log twice"
    assert set(ids) == set(published)
    assert producer.stats.spooled > 0, "Redis was never seen down: the test proved nothing"
    assert code == 0
