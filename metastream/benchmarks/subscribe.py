"""``metastream bench subscribe``: a subscriber's catch-up, live following and delay.

Starts its own Redis server (the packaged binary, a temporary directory) and
measures, in one run:

* ``catch_up_events_per_s``: a new group replaying an event log of N events
  (the synthetic mix of the replay benchmark) from the database file: every
  event peeked at, decoded with its typed values and handed to an async
  handler; ``catch_up_filtered_events_per_s``: the same log with a filter
  that keeps only ``RunStarted`` (what filtering before decoding saves);
  ``log_read_decode_per_s``: the ceiling, plain paging through the file and
  decoding each event, in the same run;
* ``live_events_per_s``: a group following the stream while another process
  XADDs M events as fast as pipelines allow (first XADD to last handler call);
  ``raw_xreadgroup_per_s``: the ceiling, a plain ``XREADGROUP COUNT 500`` +
  decode + ``XACK`` loop over the same M entries, in the same run;
* ``delay_ms_p50``/``p99``: from the ``XADD`` of an event (its ``ts`` is set
  just before) to the handler, at a paced ``--rate``.

Figures are printed, never asserted. The catch-up through the HTTP feed is
not measured here (its pages are JSON; ``metastream bench ui`` covers the
server side).
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import redis
import redis.asyncio as aredis

from metastream.benchmarks import percentile, say
from metastream.benchmarks.synthetic import encoded, generate, incoming_batches
from metastream.config import Settings
from metastream.constants import DATA_FIELD, GROUP
from metastream.schemas import AnyEvent, ById, MetadataLogged, decode_event, encode_event
from metastream.stack.server import RedisServer
from metastream.subscriptions import SubscribeOptions, subscribe
from metastream.subscriptions.history import FileHistory

PAGE = 1000


async def _build_log(path: Path, n: int) -> None:
    from metastream.eventlog import SqliteEventLog, connect
    from metastream.projections import Store

    await (await Store.open(path, catch_up=False)).close()  # the schema the readers expect
    db = await connect(path)
    log = SqliteEventLog(db)
    try:
        for chunk in incoming_batches(generate(n), 10_000):
            async with log.transaction():
                await log.append(chunk)
    finally:
        await db.close()


class Counter:
    """An async handler that counts, and notes when it has seen ``target`` events."""

    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = asyncio.Event()

    async def __call__(self, event: AnyEvent) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


def _options(url: str, stream: str, settings: Settings) -> SubscribeOptions:
    return SubscribeOptions(redis_url=url, stream=stream, log_group=GROUP, settings=settings)


async def _catch_up(url: str, db: Path, n: int, settings: Settings, **filters: Any) -> float:
    stream = f"bench:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, GROUP, id="$", mkstream=True)  # the log's group: nothing pending
    client.close()
    target = n if not filters else _count_run_started(db)
    handler = Counter(target)
    subscription = subscribe(
        handler,
        group="bench",
        from_="start",
        history=FileHistory(db),
        options=_options(url, stream, settings),
        **filters,
    )
    started = time.perf_counter()
    async with subscription.app:
        await handler.done.wait()
        elapsed = time.perf_counter() - started
    await subscription.forget()
    return n / elapsed


def _count_run_started(db: Path) -> int:
    from metastream.query import Reader
    from metastream.subscriptions.filters import peek

    with Reader(db) as reader:
        count, after = 0, 0
        while page := reader.bodies(after, 10_000):
            count += sum(1 for _, body in page if peek(bytes(body)).type == "RunStarted")
            after = page[-1][0]
    return count


def _read_decode(db: Path) -> float:
    from metastream.query import Reader

    with Reader(db) as reader:
        started = time.perf_counter()
        count, after = 0, 0
        while page := reader.bodies(after, PAGE):
            for _, body in page:
                decode_event(bytes(body))
            count += len(page)
            after = page[-1][0]
        return count / (time.perf_counter() - started)


def _publish(url: str, stream: str, bodies: list[bytes]) -> float:
    client = redis.Redis.from_url(url)
    try:
        started = time.perf_counter()
        for start in range(0, len(bodies), 500):
            with client.pipeline(transaction=False) as pipe:
                for body in bodies[start : start + 500]:
                    pipe.xadd(stream, {DATA_FIELD: body})
                pipe.execute()
        return started
    finally:
        client.close()


def _publish_elsewhere(url: str, stream: str, bodies: list[bytes], first: Any) -> None:
    """In a process of its own (producers are other processes): XADD all, note when it began."""
    first.value = time.time()
    _publish(url, stream, bodies)


async def _live(url: str, m: int, settings: Settings) -> tuple[float, str]:
    import multiprocessing

    stream = f"bench:{uuid.uuid4().hex}"
    bodies = list(encoded(generate(m, seed=13)))
    handler = Counter(m)
    subscription = subscribe(
        handler, group="bench-live", from_="now", options=_options(url, stream, settings)
    )
    spawn = multiprocessing.get_context("spawn")
    first = spawn.Value("d", 0.0)
    async with subscription.app:
        publisher = spawn.Process(target=_publish_elsewhere, args=(url, stream, bodies, first))
        publisher.start()
        await handler.done.wait()
        elapsed = time.time() - first.value
        await asyncio.to_thread(publisher.join)
    return m / elapsed, stream


async def _raw_ceiling(url: str, stream: str, m: int) -> float:
    client = aredis.Redis.from_url(url)
    try:
        await client.xgroup_create(stream, "bench-raw", id="0")
        started = time.perf_counter()
        count = 0
        while count < m:
            reply: Any = await client.xreadgroup("bench-raw", "c", {stream: ">"}, count=500)
            if not reply:
                continue
            entries = reply[0][1]
            for _, fields in entries:
                decode_event(fields[DATA_FIELD.encode()])
            await client.xack(stream, "bench-raw", *[i for i, _ in entries])
            count += len(entries)
        return m / (time.perf_counter() - started)
    finally:
        await client.aclose()


class DelayRecorder(Counter):
    def __init__(self, target: int) -> None:
        super().__init__(target)
        self.delays: list[float] = []

    async def __call__(self, event: AnyEvent) -> None:
        self.delays.append(time.time() - event.ts)
        await super().__call__(event)


async def _delay(url: str, k: int, rate: float, settings: Settings) -> list[float]:
    stream = f"bench:{uuid.uuid4().hex}"
    handler = DelayRecorder(k)
    subscription = subscribe(
        handler, group="bench-delay", from_="now", options=_options(url, stream, settings)
    )
    target = ById(kind="pipeline_run", id=uuid.uuid4())

    def pace() -> None:
        client = redis.Redis.from_url(url)
        try:
            start = time.perf_counter()
            for i in range(k):
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                body = encode_event(MetadataLogged(target=target, metadata={"i": i}))
                client.xadd(stream, {DATA_FIELD: body})
        finally:
            client.close()

    async with subscription.app:
        thread = threading.Thread(target=pace)
        thread.start()
        await handler.done.wait()
        thread.join()
    return handler.delays


def run(events: int, live: int, delays: int, rate: float, quiet: bool = False) -> dict[str, Any]:
    # A subscription stopped right after it started (the catch-up phases) can have its
    # first XREADGROUP cut by the broker closing its connections: FastStream logs that
    # as an error with a traceback. It is noise here.
    logging.getLogger("metastream.faststream").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        settings = Settings.from_env({"METASTREAM_HOME": str(work / "home")})
        db = work / "log.db"
        say(quiet, f"building an event log of {events:,} events ...")
        asyncio.run(_build_log(db, events))
        server = RedisServer(work / "redis")
        server.start()
        try:
            url = server.url
            say(quiet, "catch-up from the file ...")
            catch_up = asyncio.run(_catch_up(url, db, events, settings))
            say(quiet, f"  {catch_up:,.0f} events/s")
            filtered = asyncio.run(_catch_up(url, db, events, settings, types="RunStarted"))
            say(quiet, f"  filtered to RunStarted: {filtered:,.0f} events/s")
            ceiling = _read_decode(db)
            say(quiet, f"  ceiling, read + decode: {ceiling:,.0f} events/s")
            say(quiet, f"live following, {live:,} events XADDed in pipelines ...")
            live_rate, stream = asyncio.run(_live(url, live, settings))
            raw = asyncio.run(_raw_ceiling(url, stream, live))
            say(quiet, f"  {live_rate:,.0f} events/s (raw XREADGROUP+decode+XACK {raw:,.0f}/s)")
            say(quiet, f"delay XADD -> handler, {delays:,} events at {rate:,.0f}/s ...")
            measured = asyncio.run(_delay(url, delays, rate, settings))
        finally:
            server.stop()
    figures = {
        "events": events,
        "catch_up_events_per_s": round(catch_up),
        "catch_up_filtered_events_per_s": round(filtered),
        "log_read_decode_per_s": round(ceiling),
        "live_events": live,
        "live_events_per_s": round(live_rate),
        "raw_xreadgroup_per_s": round(raw),
        "delay_events": delays,
        "delay_rate_per_s": rate,
        "delay_ms_p50": round(statistics.median(measured) * 1000, 3),
        "delay_ms_p99": round(percentile(sorted(measured), 0.99) * 1000, 3),
    }
    say(quiet, f"  p50 {figures['delay_ms_p50']} ms, p99 {figures['delay_ms_p99']} ms")
    return figures


def main(events: int, live: int, delays: int, rate: float, as_json: bool) -> int:
    figures = run(events, live, delays, rate, quiet=False)
    if as_json:
        print(json.dumps(figures))
    else:
        print(msgspec.json.format(msgspec.json.encode(figures)).decode())
    return 0
