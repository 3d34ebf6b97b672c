"""The cost of publishing, as the caller sees it, while the sender is busy.

``measure_calls`` times every call of the whole caller path of one
``log_metadata`` (``prepare_metadata`` of 5 keys, ``MetadataLogged``,
``encode_event``, ``Producer.publish``) with ``time.perf_counter_ns``, while
the producer's sender thread sends to a real Redis and so competes for the
GIL. It reports the latency percentiles in µs and how many events per
second reached Redis (from the first call until ``flush`` returned).
``measure_baseline`` times the same caller path with a bare ``deque.append``
in place of ``publish`` and no producer: what the machine gives anyway.

Before and after, in the same run: ``run()`` measures the producer twice,
alternately, with memory-mapped spool segments (every event on disk before
``publish`` returns, the default) and with ``segment_bytes=0`` (events in
memory only, as before segments): ``segments`` and ``memory_only`` in the
output, two rounds each, so that a machine busy with something else during
one of them shows as a difference between rounds, not between variants.
``measure_raw_xadd`` gives the ceiling to compare with: redis-py pipelines
of 500 ``XADD`` on the same server, nothing else running.

Run ``python -m metastream.benchmarks.producer [N]``: it starts its own Redis
server in a temporary directory and prints the figures as JSON. Figures are
printed, never asserted.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import redis

from metastream.benchmarks import percentile
from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.producer import Producer
from metastream.producer.segments import SEGMENT_BYTES
from metastream.schemas import ById, MetadataLogged, encode_event, prepare_metadata


def _percentile(ordered: list[int], fraction: float) -> float:
    """In µs, of nanoseconds."""
    return percentile(ordered, fraction) / 1000


def measure_calls(
    redis_url: str, stream: str, n: int = 200_000, segment_bytes: int | None = None
) -> dict[str, Any]:
    """Per-call latency of a whole ``log_metadata``-like publish, with the sender sending.

    ``segment_bytes=0``: events in memory only (no spool segments).
    """
    target = ById(kind="step_run", id=uuid.uuid4())
    with tempfile.TemporaryDirectory(prefix="metastream-bench-") as tmp:
        settings = Settings.from_env({"METASTREAM_HOME": tmp})
        producer = Producer(
            settings,
            redis_url=redis_url,
            stream=stream,
            segment_bytes=SEGMENT_BYTES if segment_bytes is None else segment_bytes,
        )
        try:
            for i in range(1000):  # start the thread, connect, load the script
                producer.publish(_one(target, i))
            producer.flush(10)
            warm_sent = producer.stats.sent
            latencies = [0] * n
            clock = time.perf_counter_ns
            publish = producer.publish
            started = time.perf_counter()
            for i in range(n):
                t0 = clock()
                metadata = prepare_metadata(
                    {"loss": 1.0 / (i + 1), "accuracy": 0.5, "epoch": i, "lr": 1e-3, "opt": "adam"}
                )
                publish(encode_event(MetadataLogged(target=target, metadata=metadata)))
                latencies[i] = clock() - t0
            calls_done = time.perf_counter()
            flushed = producer.flush(120)
            finished = time.perf_counter()
            stats = producer.stats
        finally:
            producer.close()
    latencies.sort()
    return {
        "n": n,
        "median_us": statistics.median(latencies) / 1000,
        "p99_us": _percentile(latencies, 0.99),
        "p999_us": _percentile(latencies, 0.999),
        "max_us": latencies[-1] / 1000,
        "calls_per_s": n / (calls_done - started),
        "events_per_s": (stats.sent - warm_sent) / (finished - started),
        "flushed": flushed,
        "spooled": stats.spooled,
    }


def measure_baseline(n: int = 200_000) -> dict[str, Any]:
    """The same caller path with ``deque.append`` instead of ``publish``: no producer at all."""
    target = ById(kind="step_run", id=uuid.uuid4())
    queue: deque[bytes] = deque()
    append = queue.append
    latencies = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        metadata = prepare_metadata(
            {"loss": 1.0 / (i + 1), "accuracy": 0.5, "epoch": i, "lr": 1e-3, "opt": "adam"}
        )
        append(encode_event(MetadataLogged(target=target, metadata=metadata)))
        latencies[i] = clock() - t0
    latencies.sort()
    return {
        "median_us": statistics.median(latencies) / 1000,
        "p99_us": _percentile(latencies, 0.99),
        "p999_us": _percentile(latencies, 0.999),
    }


def _one(target: ById, i: int) -> bytes:
    metadata = prepare_metadata({"warmup": i})
    return encode_event(MetadataLogged(target=target, metadata=metadata))


def measure_raw_xadd(redis_url: str, stream: str, n: int = 200_000, chunk: int = 500) -> float:
    """Events per second of redis-py pipelined ``XADD``, ``chunk`` per pipeline, bodies ready."""
    target = ById(kind="step_run", id=uuid.uuid4())
    bodies = [_one(target, i) for i in range(n)]
    client = redis.Redis.from_url(redis_url)
    try:
        started = time.perf_counter()
        for i in range(0, n, chunk):
            pipe = client.pipeline(transaction=False)
            for body in bodies[i : i + chunk]:
                pipe.xadd(stream, {DATA_FIELD: body})
            pipe.execute()
        return n / (time.perf_counter() - started)
    finally:
        client.close()


def run(n: int = 200_000) -> dict[str, Any]:
    """Start a Redis server, measure both, return the figures."""
    from metastream.stack.server import RedisServer

    with tempfile.TemporaryDirectory(prefix="metastream-bench-redis-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            rounds: dict[str, list[dict[str, Any]]] = {"segments": [], "memory_only": []}
            for i in range(2):
                rounds["segments"].append(measure_calls(server.url, f"bench:seg{i}", n))
                rounds["memory_only"].append(
                    measure_calls(server.url, f"bench:mem{i}", n, segment_bytes=0)
                )
            figures: dict[str, Any] = dict(rounds)
            figures["raw_xadd_per_s"] = measure_raw_xadd(server.url, "bench:raw", n)
            figures["caller_only"] = measure_baseline(n)
        finally:
            server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200_000
    print(json.dumps(run(n), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
