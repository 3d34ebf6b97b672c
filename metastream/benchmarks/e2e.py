"""``metastream bench e2e``: producer and consumer as separate processes, on a real Redis.

It starts its own Redis server (the packaged binary, a temporary
directory) and a consumer process (``python -m metastream consume``), then:

1. **calls and throughput**: a producer process logs ``--events`` events of 5
   keys with ``log_metadata`` inside a step, timing every call while its
   sender is busy (``producer_call_median_us``, ``producer_call_p99_us``);
   ``e2e_events_per_s`` is events over the time from the first publish to
   the last event visible in the views (the log's projections);
2. **lag**: a producer process publishes at a steady ``--rate`` (50,000/s)
   for ``--seconds``; the lag of an event is the time from its publish to
   its visibility in the views, found by polling the views every 5 ms
   (``lag_p50_ms``, ``lag_p99_ms``, and ``consumed_events_per_s``, what the
   consumer kept up with);
3. ``raw_xadd_per_s``: redis-py pipelined XADD in chunks of 500 on the same
   server in the same run: the ceiling of publishing from Python.

Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from metastream.benchmarks import say
from metastream.errors import StoreError
from metastream.query import Reader
from metastream.stack.server import RedisServer

_PRODUCER = r"""
import json, sys, time
from metastream import log_metadata, pipeline_run, flush
mode, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
calls = []
with pipeline_run("bench", run_name=f"bench-{mode}") as run:
    with run.step("publish"):
        clock = time.perf_counter_ns
        first = time.time()
        start = time.perf_counter()
        for i in range(n):
            if rate and i % 50 == 0:  # bursts of 50, sleeping until each is due
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t = clock()
            log_metadata({"loss": 1.0 / (i + 1), "step": i, "lr": 0.01, "phase": "train",
                          "ok": True})
            calls.append(clock() - t)
        published = time.time()
flush(120)
print(json.dumps({"first": first, "published": published, "calls": sorted(calls)}))
"""


def _env(url: str, home: Path, stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_")}
    env.update(METASTREAM_REDIS_URL=url, METASTREAM_HOME=str(home), METASTREAM_STREAM=stream)
    return env


def _applied(reader: Reader) -> int:
    return reader.applied_through()


def _wait_applied(reader: Reader, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while _applied(reader) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_applied(reader):,} of {count:,} events applied")
        time.sleep(0.002)
    return time.time()


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _produce(env: dict[str, str], mode: str, n: int, rate: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, mode, str(n), str(rate)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _throughput(env: dict[str, str], reader: Reader, n: int) -> dict[str, Any]:
    before = _applied(reader)
    producer = _produce(env, "throughput", n, 0)
    out, _ = producer.communicate(timeout=600)
    report = json.loads(out)
    # n metadata events + run started/finished + step started/finished
    visible = _wait_applied(reader, before + n + 4, timeout=600)
    calls = [c / 1000 for c in report["calls"]]
    return {
        "producer_call_median_us": round(statistics.median(calls), 2),
        "producer_call_p99_us": round(_percentile(calls, 0.99), 2),
        "producer_call_p999_us": round(_percentile(calls, 0.999), 2),
        "e2e_events_per_s": round(n / (visible - report["first"])),
    }


def _lag(env: dict[str, str], reader: Reader, rate: float, seconds: float) -> dict[str, Any]:
    n = int(rate * seconds)
    before = _applied(reader) + 3  # run started, step started and (the last) run events
    producer = _produce(env, "lag", n, rate)
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds * 20 + 60
    while True:
        applied = _applied(reader) - before
        seen.append((time.time(), applied))
        if applied >= n or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    out, _ = producer.communicate(timeout=120)
    report = json.loads(out)
    start = report["first"]
    lags: list[float] = []
    k = 0
    for i in range(n):  # event i was due at start + i / rate
        while k < len(seen) and seen[k][1] <= i:
            k += 1
        if k == len(seen):
            break
        lags.append(max(0.0, seen[k][0] - (start + i / rate)) * 1000)
    lags.sort()
    done = seen[-1][1]
    return {
        "lag_rate_per_s": int(rate),
        "lag_p50_ms": round(_percentile(lags, 0.5), 1) if lags else None,
        "lag_p99_ms": round(_percentile(lags, 0.99), 1) if lags else None,
        "consumed_events_per_s": round(done / max(seen[-1][0] - start, 1e-9)),
        "published_per_s": round(n / max(report["published"] - start, 1e-9)),
    }


@contextmanager
def _when_ready(db: Path, consumer: subprocess.Popen[bytes]) -> Iterator[Reader]:
    """A reader of the consumer's database, once the consumer has created it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            reader = Reader(db)
            break
        except StoreError:
            if consumer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the consumer did not start") from None
            time.sleep(0.05)
    try:
        yield reader
    finally:
        reader.close()


def _raw_xadd(url: str, n: int = 200_000, chunk: int = 500) -> int:
    client = redis.Redis.from_url(url)
    stream = f"bench:raw:{uuid.uuid4().hex}"
    body = os.urandom(180)
    try:
        start = time.perf_counter()
        for _ in range(0, n, chunk):
            with client.pipeline(transaction=False) as pipe:
                for _entry in range(chunk):
                    pipe.xadd(stream, {"__data__": body})
                pipe.execute()
        return round(n / (time.perf_counter() - start))
    finally:
        client.delete(stream)
        client.close()


def run(
    events: int = 200_000, *, rate: float = 50_000, seconds: float = 5.0, quiet: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="metastream-e2e-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        home = Path(tmp) / "home"
        env = _env(server.url, home, f"bench:{uuid.uuid4().hex}")
        consumer = subprocess.Popen(
            [sys.executable, "-m", "metastream", "consume"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with _when_ready(home / "metastream.db", consumer) as reader:
                say(quiet, f"e2e benchmark: {events:,} events through Redis and a consumer")
                result = _throughput(env, reader, events)
                say(quiet, f"  lag at a steady {rate:,.0f} events/s for {seconds:g} s")
                result.update(_lag(env, reader, rate, seconds))
            result["raw_xadd_per_s"] = _raw_xadd(server.url)
        finally:
            consumer.terminate()
            consumer.wait(60)
            server.stop()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    say(
        quiet,
        f"  producer call   median {result['producer_call_median_us']} µs, "
        f"p99 {result['producer_call_p99_us']} µs   (targets <= 5 and <= 50)\n"
        f"  end to end      {result['e2e_events_per_s']:>9,} events/s   (target >= 100,000)\n"
        f"  lag at {rate:,.0f}/s  p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms "
        f"(target p99 < 1,000); the consumer kept up with "
        f"{result['consumed_events_per_s']:,} events/s\n"
        f"  raw XADD        {result['raw_xadd_per_s']:>9,} entries/s (redis-py pipelines of 500)",
    )
    return result


def main(events: int, rate: float, seconds: float, as_json: bool) -> int:
    result = run(events, rate=rate, seconds=seconds)
    if as_json:
        print(json.dumps(result))
    return 0
