"""Issue 7, findings 5 and 7: a consumer process whose database or Redis is pulled from under it.

* The database file deleted (or replaced) while the consumer runs: it stops
  with nothing more acked, says why (log, stderr, ``consumer_problem``),
  exits 1; restarted, it writes every event published after the deletion
  to the database now at that path.
* Redis restarted without its data (AOF gone): the consumer recreates its
  group at 0, warns that events may be missing, and goes on consuming.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.consumer import Consumer
from metastream.consumer.stopped import consumer_problem
from metastream.errors import StoreError
from metastream.schemas import decode_stored
from metastream.stack.server import RedisServer
from tests.integration.consumer_fixtures import log, output, s
from tests.streams import (
    fill,
    head,
    log_ids,
    pending,
    run_events,
    start_consumer_process,
    stop_process,
    wait_for_sync,
)

pytestmark = pytest.mark.redis

__all__ = ["log", "s"]  # fixtures, used by name


def event_ids(bodies: list[bytes]) -> set[bytes]:
    return {decode_stored(b).event_id for b in bodies}


def remove_database(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced by another file"])
def test_finding_5_a_database_pulled_from_under_the_consumer_loses_no_later_event(
    how: str, s: Settings, redis_client: redis.Redis, log: Path, tmp_path: Path
) -> None:
    before = run_events(300)
    fill(redis_client, s.stream, before)
    first = start_consumer_process(s, log)
    try:
        wait_for_sync(lambda: head(s.db) == 300, 60, first)
        wait_for_sync(lambda: pending(redis_client, s.stream, s.group) == 0, 30, first)
        if how == "deleted":
            remove_database(s.db)
        else:  # another file moved into its place (a restored backup, say)
            other = tmp_path / "other.db"
            other.write_bytes(b"")
            remove_database(s.db)
            os.replace(other, s.db)
        after = run_events(500)
        fill(redis_client, s.stream, after)
        assert first.wait(60) == 1, output(log)
    finally:
        stop_process(first)
    said = f"the database at {s.db} was {how} while the consumer ran"
    assert said in output(log)  # in the log (its stderr), and the last line says it again
    assert output(log).strip().splitlines()[-1].startswith(f"metastream: {said}")
    problem = consumer_problem(s)
    assert problem is not None
    assert said in problem
    (group,) = redis_client.xinfo_groups(s.stream)
    acked = group["entries-read"] - group["pending"]
    assert acked == 300  # nothing published after the deletion was acked

    second = start_consumer_process(s, log)  # on the database now at that path
    try:
        wait_for_sync(lambda: head(s.db) >= 500, 60, second)  # (an empty file until it starts)
        wait_for_sync(lambda: pending(redis_client, s.stream, s.group) == 0, 30, second)
    finally:
        assert stop_process(second) == 0, output(log)
    logged = log_ids(s.db)
    assert len(logged) == len(set(logged))
    assert event_ids(after) <= set(logged) <= event_ids(before + after)
    assert consumer_problem(s) is None  # a consumer runs on that database again


def test_finding_7_redis_restarted_empty_the_consumer_recreates_its_group_and_warns(
    s: Settings, log: Path, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    restarted: RedisServer | None = None
    consumer = None
    try:
        s = s.with_(redis_url=server.url)
        client = redis.Redis.from_url(server.url)
        before = run_events(100)
        fill(client, s.stream, before)
        consumer = start_consumer_process(s, log)
        wait_for_sync(lambda: head(s.db) == 100, 60, consumer)
        client.close()

        assert server.process is not None
        server.process.kill()  # a crash, and its data gone with it
        server.process.wait()
        for item in server.directory.iterdir():  # the AOF (and any snapshot)
            if item.name.startswith("appendonly") or item.suffix in (".aof", ".rdb"):
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        restarted = RedisServer(server.directory, port=server.port)
        restarted.start()

        client = redis.Redis.from_url(restarted.url)
        after = run_events(100)
        fill(client, s.stream, after)
        wait_for_sync(lambda: event_ids(after) <= set(log_ids(s.db)), 60, consumer)
        wait_for_sync(lambda: pending(client, s.stream, s.group) == 0, 30, consumer)
        client.close()
        assert consumer.poll() is None  # still running
        text = output(log)
        assert "WARNING" in text
        assert "Redis lost its data" in text
        assert "events may be missing" in text
        logged = log_ids(s.db)
        assert len(logged) == len(set(logged)) == 200
    finally:
        if consumer is not None:
            assert stop_process(consumer) == 0, output(log)
        for each in (restarted, server):
            if each is not None:
                each.stop()


async def test_a_consumer_that_cannot_open_its_database_leaves_no_connection_open(
    redis_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = Settings.from_env({"METASTREAM_HOME": str(tmp_path)}).with_(
        redis_url=redis_url, db=blocker / "sub" / "metastream.db"
    )
    consumer = Consumer(settings, environ={"METASTREAM_PROJECTOR": "0"})
    with pytest.raises(StoreError, match="cannot open the database"):
        await consumer.app.run()
    assert consumer.client is None
    assert consumer.broker._connection is None  # the broker's pool was closed too
