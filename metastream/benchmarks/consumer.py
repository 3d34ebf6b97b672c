"""Consumer throughput: a stream pre-filled with N events, ingested by one consumer.

    metastream bench consumer [--events 100000] [--max-records 1000] [--runs 3]

Starts its own Redis server (the packaged binary, a free port, a temporary
directory), fills a stream with pipelined XADDs of the synthetic mix the replay
benchmark uses (``synthetic.generate``), then times a consumer
from its start until every entry is committed to the log and acked (the
consumer alone: no projector, ``METASTREAM_PROJECTOR=0``; the projector's
rate is ``projector_events_per_s`` of ``metastream bench e2e``). Not a
test. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from metastream.benchmarks.synthetic import encoded, generate
from metastream.config import Settings
from metastream.consumer import Consumer
from metastream.query import Reader
from metastream.stack.server import RedisServer


def events(n: int) -> list[bytes]:
    """``n`` encoded events of the realistic synthetic mix (``synthetic.generate``)."""
    return list(encoded(generate(n)))


async def consume(settings: Settings, n: int) -> float:
    consumer = Consumer(settings, housekeeping_interval=3600, environ={"METASTREAM_PROJECTOR": "0"})
    async with consumer.app:
        started = time.perf_counter()
        while consumer.ingestor is None or consumer.ingestor.stats.entries < n:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    await consumer.close()
    return elapsed


def one_run(url: str, bodies: list[bytes], max_records: int, work: Path) -> float:
    stream = f"bench:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    try:
        for start in range(0, len(bodies), 1000):
            with client.pipeline(transaction=False) as pipe:
                for body in bodies[start : start + 1000]:
                    pipe.xadd(stream, {"__data__": body})
                pipe.execute()
        home = Path(tempfile.mkdtemp(dir=work))
        settings = Settings.from_env({"METASTREAM_HOME": str(home)}).with_(
            stream=stream, redis_url=url, max_records=max_records
        )
        elapsed = asyncio.run(consume(settings, len(bodies)))
        with Reader(settings.db) as reader:
            assert reader.head() == len(bodies)
        assert client.xpending(stream, settings.group)["pending"] == 0
        return elapsed
    finally:
        client.delete(stream)
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--max-records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    bodies = events(args.events)
    size = sum(map(len, bodies)) // len(bodies)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            rates = []
            for _ in range(args.runs):
                elapsed = one_run(server.url, bodies, args.max_records, Path(tmp))
                rates.append(args.events / elapsed)
                print(
                    f"{args.events:,} events ({size} bytes) in {elapsed:.2f} s: "
                    f"{rates[-1]:,.0f} events/s",
                    flush=True,
                )
        finally:
            server.stop()
    print(
        f"median {statistics.median(rates):,.0f} events/s "
        f"(max_records={args.max_records}, {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
