"""The real stack for a test, as a user's code sees it.

* the session's Redis server (``redis_server``; never the machine's 6379),
  with a stream of the test's own;
* a fresh ``METASTREAM_HOME`` (and so database) in the test's tmp_path;
* the real consumer, ``python -m metastream consume``, as a process of its
  own, reading that stream into that database;
* ``METASTREAM_REDIS_URL``/``METASTREAM_STREAM``/``METASTREAM_HOME`` set, and
  the process-wide producer and settings forgotten, so that ``log_metadata``
  publishes through a new real producer configured from the environment;
* ``Client(db)`` to read back.

Per test, so that every test may create the names the reference's examples
use ("my_run_id", ...) in a database of its own; starting the consumer
costs ~0.7 s.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

import metastream
from metastream.config import Settings
from metastream.pipelines import emit
from metastream.producer import default
from metastream.query import Client
from metastream.schemas import ArtifactVersionRegistered
from metastream.stack.server import RedisServer
from tests.streams import (
    start_consumer_process,
    stop_process,
    stop_stack_left_in,
    views_at_head,
    wait_for_sync,
)

log_module = importlib.import_module("metastream.pipelines.log")


@dataclass
class RealStack:
    settings: Settings
    redis: redis.Redis
    consumer: subprocess.Popen[bytes]
    consumer_log: Path
    client: Client

    def output(self) -> str:
        """What the consumer printed (for failure messages)."""
        return self.consumer_log.read_text(errors="replace")

    def stream_length(self) -> int:
        return int(self.redis.xlen(self.settings.stream))

    def sync(self, timeout: float = 20.0) -> None:
        """Return once everything published so far is in the views.

        The producer is flushed (every event is in the stream), then the
        consumer group must have been delivered the stream's last entry and
        have nothing pending (the consumer acks only after the transaction
        that appended the events has committed), then the projector must
        have applied the whole log to the views.
        """
        assert metastream.flush(timeout), "the producer could not send everything to Redis"
        stream, group = self.settings.stream, self.settings.group.encode()

        def caught_up() -> bool:
            last = self.redis.xinfo_stream(stream)["last-generated-id"]
            (info,) = [g for g in self.redis.xinfo_groups(stream) if g["name"] == group]
            return bool(info["last-delivered-id"] == last and info["pending"] == 0)

        try:
            wait_for_sync(caught_up, timeout, self.consumer)
            wait_for_sync(lambda: views_at_head(self.settings.db), timeout, self.consumer)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the consumer's output:\n{self.output()}") from None

    def register_artifact_version(self, name: str, version: str) -> uuid.UUID:
        """Artifact ``name`` version ``version``, registered through the real producer.

        The pipeline API numbers the versions of a step's outputs (1, 2, ...);
        an artifact version with a chosen version string, like the
        reference's "20230615", comes from another producer of events (an
        importer, for example). Visible once ``sync()`` returns.
        """
        artifact_id = uuid.uuid4()
        emit.publish(
            ArtifactVersionRegistered(artifact_version_id=artifact_id, name=name, version=version)
        )
        return artifact_id


def _forget_process_wide_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new producer, settings and name-checking reader on first use, from the environment."""
    monkeypatch.setattr(default, "_default", None)
    monkeypatch.setattr(log_module, "_reader", None)
    emit.settings.cache_clear()


def _close_process_wide_state() -> None:
    producer = default._default
    if producer is not None:
        producer.close(timeout=5)
    reader = log_module._reader
    if reader is not None:
        reader.close()
    emit.settings.cache_clear()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No METASTREAM_ variable set, and a fresh producer, settings and reader.

    Whatever the test creates (the producer, the reader ``log_metadata``
    checks names with) is closed afterwards; the previous ones come back.
    """
    for name in list(os.environ):
        if name.startswith("METASTREAM_"):
            monkeypatch.delenv(name)
    _forget_process_wide_state(monkeypatch)
    try:
        yield monkeypatch
    finally:
        _close_process_wide_state()


@pytest.fixture
def real_stack(
    redis_server: RedisServer, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> Iterator[RealStack]:
    home = tmp_path / "home"
    home.mkdir()
    clean_env.setenv("METASTREAM_HOME", str(home))
    clean_env.setenv("METASTREAM_REDIS_URL", redis_server.url)
    clean_env.setenv("METASTREAM_STREAM", f"test:{uuid.uuid4().hex}")
    settings = Settings.from_env()
    consumer_log = tmp_path / "consumer.log"
    consumer = start_consumer_process(settings, consumer_log)
    client = redis.Redis.from_url(redis_server.url)
    try:
        name = f"-{consumer.pid}".encode()

        def reading() -> bool:  # the group exists, the consumer reads, the database is made
            try:
                consumers = client.xinfo_consumers(settings.stream, settings.group)
            except redis.ResponseError:
                return False
            return any(c["name"].endswith(name) for c in consumers) and settings.db.exists()

        wait_for_sync(reading, 60, consumer)
        with Client(settings.db) as reader:
            stack = RealStack(settings, client, consumer, consumer_log, reader)
            yield stack
    finally:
        code = stop_process(consumer)
        client.close()
    assert code == 0, consumer_log.read_text(errors="replace")


@pytest.fixture
def stack_home(home: Path) -> Iterator[Path]:
    """METASTREAM_HOME for a stack that ``metastream up`` starts (the tests of ``up`` itself);
    whatever it left running is stopped afterwards."""
    yield home
    stop_stack_left_in(home)


__all__ = ["RealStack", "clean_env", "real_stack", "stack_home"]
