"""``metastream consume`` starts a projector as its child: views follow, and no orphan is left."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.query import Reader
from tests.streams import (
    consumer_settings,
    fill,
    head,
    run_events,
    running_consumer,
    start_consumer_process,
    stop_process,
    views_at_head,
    wait_for,
    wait_for_sync,
)

pytestmark = pytest.mark.redis


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_consumers_projector_writes_the_views_and_dies_with_it(
    settings: Settings, stream: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    s = consumer_settings(settings, stream, redis_url)
    consumer = start_consumer_process(s, tmp_path / "consumer.log")
    try:
        wait_for_sync(lambda: bool(children(consumer.pid)), 30, consumer)
        (projector,) = children(consumer.pid)
        fill(redis_client, s.stream, run_events(200, name="with-child"))
        wait_for_sync(lambda: views_at_head(s.db) and head(s.db) == 200, 30, consumer)
        with Reader(s.db) as reader:
            assert reader.run("with-child").run_metadata["i"] == 199
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
        wait_for_sync(lambda: not alive(projector), 10)  # it noticed its parent was gone
    finally:
        stop_process(consumer)


def test_no_projector_child_with_projector_0(
    settings: Settings, stream: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    s = consumer_settings(settings, stream, redis_url)
    consumer = start_consumer_process(s, tmp_path / "consumer.log", {"METASTREAM_PROJECTOR": "0"})
    try:
        fill(redis_client, s.stream, run_events(20))
        wait_for_sync(lambda: head(s.db) == 20, 30, consumer)
        assert children(consumer.pid) == []
        assert not views_at_head(s.db)  # appended, acked, not projected: no projector runs
    finally:
        assert stop_process(consumer) == 0
    assert os.path.exists(s.db)


async def test_a_projector_child_that_dies_is_started_again_and_the_views_catch_up(
    settings: Settings, stream: str, redis_url: str, redis_client: redis.Redis
) -> None:
    s = consumer_settings(settings, stream, redis_url)
    async with running_consumer(s, housekeeping_interval=0.2) as consumer:
        assert consumer.projector is not None
        first = consumer.projector.pid
        fill(redis_client, s.stream, run_events(30))
        await wait_for(lambda: views_at_head(s.db) and head(s.db) == 30)
        os.kill(first, signal.SIGKILL)
        fill(redis_client, s.stream, run_events(30))  # appended while no projector runs
        await wait_for(lambda: consumer.projector is not None and consumer.projector.pid != first)
        await wait_for(lambda: views_at_head(s.db) and head(s.db) == 60)
