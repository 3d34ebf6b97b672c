"""Helpers for the consumer and stack tests: events on a stream, consumers in and out of process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis

from metastream.config import Settings
from metastream.consumer import Consumer
from metastream.query import Reader
from metastream.schemas import ById, MetadataLogged, RunStarted, encode_event, prepare_metadata

DATA = "__data__"


def run_events(n: int, run_id: uuid.UUID | None = None, name: str = "r") -> list[bytes]:
    """One ``RunStarted`` and ``n - 1`` ``MetadataLogged`` on that run, encoded."""
    run_id = run_id or uuid.uuid4()
    out = [encode_event(RunStarted(run_id=run_id, name=name, pipeline_name="p"))]
    target = ById(kind="pipeline_run", id=run_id)
    out.extend(
        encode_event(MetadataLogged(target=target, metadata=prepare_metadata({"i": i})))
        for i in range(1, n)
    )
    return out


def fill(client: redis.Redis, stream: str, bodies: list[bytes]) -> list[bytes]:
    """XADD every body as the producer would (one ``__data__`` field); the entry ids."""
    ids: list[bytes] = []
    for start in range(0, len(bodies), 1000):
        with client.pipeline(transaction=False) as pipe:
            for body in bodies[start : start + 1000]:
                pipe.xadd(stream, {DATA: body})
            ids.extend(pipe.execute())
    return ids


def consumer_settings(settings: Settings, stream: str, url: str, **changes: Any) -> Settings:
    """Settings for a test: its own stream and dead-letter stream, its tmp database."""
    return settings.with_(
        stream=stream, dead_letter_stream=f"{stream}:dead", redis_url=url, **changes
    )


def log_ids(db: Path) -> list[bytes]:
    """The event ids in the log, in log order."""
    if not db.exists():
        return []
    with Reader(db) as reader:
        return [bytes(r[0]) for r in reader.db.execute("SELECT event_id FROM log_events")]


def head(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with Reader(db) as reader:
            return reader.head()
    except Exception:  # created but not yet initialised by the consumer
        return 0


def views_at_head(db: Path) -> bool:
    """Whether the projector has applied everything in the log to every view."""
    try:
        with Reader(db) as reader:
            return reader.applied_through() == reader.head()
    except Exception:  # created but not yet initialised by the consumer
        return False


def pending(client: redis.Redis, stream: str, group: str) -> int:
    return int(client.xpending(stream, group)["pending"])


async def wait_for(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Return once ``predicate()`` holds; ``AssertionError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {predicate}")
        await asyncio.sleep(0.02)


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``predicate()`` becomes true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``metastream ARGS`` in a process of its own, with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "metastream", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_stack_left_in(home: Path) -> None:
    """Stop whatever a ``stack.json`` under ``home`` says is still running."""
    from metastream.config import stack_processes
    from metastream.stack.server import stop_pid

    stack_file = home / "stack.json"
    if stack_file.exists():
        record = json.loads(stack_file.read_text())
        for process in reversed(stack_processes(record)):  # the server last
            stop_pid(process.pid, timeout=20)


def wait_for_sync(
    predicate: Callable[[], bool],
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until ``predicate()``; fail at once if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode} while waiting")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(0.02)


@asynccontextmanager
async def running_consumer(settings: Settings, **options: Any) -> AsyncIterator[Consumer]:
    """A consumer running in this event loop for the duration of the block."""
    consumer = Consumer(settings, **options)
    try:
        async with consumer.app:
            yield consumer
    finally:
        await consumer.close()


def assert_exactly_once(db: Path, bodies: list[bytes], client: redis.Redis, s: Settings) -> None:
    """Every event in the log once, none twice, nothing left pending."""
    from metastream.schemas import decode_stored

    ids = log_ids(db)
    expected = {decode_stored(b).event_id for b in bodies}
    assert len(ids) == len(set(ids)), "an event is in the log twice"
    assert set(ids) == expected
    assert head(db) == len(expected)
    assert pending(client, s.stream, s.group) == 0


def consumer_env(s: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a consumer process that consumes as ``s`` says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_")}
    env.update(
        METASTREAM_HOME=str(s.home),
        METASTREAM_DB=str(s.db),
        METASTREAM_REDIS_URL=str(s.redis_url),
        METASTREAM_STREAM=s.stream,
        METASTREAM_GROUP=s.group,
        METASTREAM_MAX_RECORDS=str(s.max_records),
        METASTREAM_CLAIM_IDLE_MS=str(s.claim_idle_ms),
        METASTREAM_MAX_DELIVERIES=str(s.max_deliveries),
    )
    env.update(extra or {})
    return env


def start_consumer_process(
    s: Settings, log: Path, extra: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``metastream consume`` as a process of its own, its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "metastream", "consume"],
            env=consumer_env(s, extra),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM (if still running) and wait; the exit code."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
