"""``metastream bench e2e``: producer, consumer and projector as separate processes, on Redis.

It starts its own Redis server (the packaged binary, a temporary
directory), a consumer process (``python -m metastream consume`` with
``METASTREAM_PROJECTOR=0``) and a projector process (``python -m
metastream.projections``), as ``metastream up`` does, then:

1. **calls and throughput**: a producer process logs ``--events`` events of 5
   keys with ``log_metadata`` inside a step, timing every call while its
   sender is busy (``producer_call_median_us``, ``producer_call_p99_us``);
   ``e2e_events_per_s`` is events over the time from the first publish to
   the last event visible in the views (the projector's checkpoints);
   ``consumer_events_per_s`` the same to the last event in the log;
2. **lag**: a producer process publishes at a steady ``--rate`` (50,000/s)
   for ``--seconds``; the lag of an event is the time from its publish to
   its visibility in the views, found by polling the views every 5 ms
   (``lag_p50_ms``, ``lag_p99_ms``, ``lag_p99_ms_by_window``: the p99 of the
   events due in each 5 s of the schedule, equal when the lag is flat and
   rising when the pipeline falls behind, and ``consumed_events_per_s``,
   what the consumer kept up with);
3. ``projector_events_per_s``: the views are emptied and a projector (in
   this process, nothing else running) rebuilds them from the whole log
   written by phases 1 and 2: what the projector does when it never waits;
   ``cpu_us_per_event``: CPU time (user + system) each process spent in
   phase 1, per event: the producer, Redis, the consumer, the projector.
   Their sum over the machine's cores bounds what end to end can reach;
   ``rss_mb``: each process's resident memory after phase 1 and after
   phase 2 (``log_events`` in the log by then): flat in the number of
   events, or not;
4. ceilings on the same server in the same run: ``raw_xadd_per_s``,
   redis-py pipelined XADD in chunks of 500 (publishing from Python), and
   ``raw_xreadgroup_xack_per_s``, XREADGROUP of 1,000 and one XACK of their
   ids in a loop over a pre-filled stream (consuming from Python, nothing
   written anywhere). ``e2e_vs_xadd`` is the first ratio the issue asks for.

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

from metastream.benchmarks import percentile, say
from metastream.errors import StoreError
from metastream.eventlog import sqlite as logdb
from metastream.eventlog.sqlite import open_connection
from metastream.projections.follow import follow
from metastream.projections.projector import Projector
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


LAG_WINDOW = 5.0
"""Seconds of publishing per ``lag_p99_ms_by_window`` figure: flat lag has equal windows."""
PASSED_ON = ("METASTREAM_MAX_RECORDS",)
"""Settings of the caller's environment the benchmark's processes get (to size batches)."""


def _env(url: str, home: Path, stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_") or k in PASSED_ON}
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


def _produce(env: dict[str, str], mode: str, n: int, rate: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, mode, str(n), str(rate)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` now, in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _throughput(
    env: dict[str, str], reader: Reader, n: int, pids: dict[str, int]
) -> dict[str, Any]:
    """Phase 1; ``pids``: the processes whose CPU time per event is reported beside."""
    before = _applied(reader)
    cpu = {role: _cpu_s(pid) for role, pid in pids.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    producer = _produce(env, "throughput", n, 0)
    # n metadata events + run started/finished + step started/finished
    wanted = before + n + 4
    logged: float | None = None
    deadline = time.monotonic() + 600
    while _applied(reader) < wanted:  # the time the log had them all, then the views
        if logged is None and reader.head() >= wanted:
            logged = time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_applied(reader):,} of {wanted:,} events applied")
        time.sleep(0.002)
    visible = time.time()
    spent = {role: _cpu_s(pid) - cpu[role] for role, pid in pids.items()}
    out, _ = producer.communicate(timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent["producer"] = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    report = json.loads(out)
    calls = [c / 1000 for c in report["calls"]]
    return {
        "cpu_us_per_event": {role: round(s / n * 1e6, 2) for role, s in sorted(spent.items())},
        "producer_call_median_us": round(statistics.median(calls), 2),
        "producer_call_p99_us": round(percentile(calls, 0.99), 2),
        "producer_call_p999_us": round(percentile(calls, 0.999), 2),
        "e2e_events_per_s": round(n / (visible - report["first"])),
        "consumer_events_per_s": round(n / ((logged or visible) - report["first"])),
    }


def _rebuild(db: Path) -> int:
    """Empty the views, then time a projector applying the whole log to them (events/s)."""
    conn = open_connection(db)
    try:
        projector = Projector()
        projector.prepare(conn)
        projector.reset(conn, projector.projections)
        head = logdb.head(conn)
    finally:
        conn.close()
    projector = Projector()
    start = time.perf_counter()
    stats = follow(db, projector=projector, until=lambda: True, idle=0)
    spent = time.perf_counter() - start
    if stats.applied != head:
        raise RuntimeError(f"the projector applied {stats.applied:,} of {head:,} events")
    return round(head / spent)


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
    per_window = max(1, int(rate * LAG_WINDOW))  # events due in each window, in order
    windows = [
        round(percentile(sorted(lags[i : i + per_window]), 0.99), 1)
        for i in range(0, len(lags), per_window)
    ]
    lags.sort()
    done = seen[-1][1]
    return {
        "lag_rate_per_s": int(rate),
        "lag_p50_ms": round(percentile(lags, 0.5), 1) if lags else None,
        "lag_p99_ms": round(percentile(lags, 0.99), 1) if lags else None,
        "lag_p99_ms_by_window": windows,
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


def _raw_xreadgroup_xack(url: str, n: int = 200_000, count: int = 1000) -> int:
    """XREADGROUP ``count`` entries and XACK them, in a loop: the ceiling of consuming."""
    client = redis.Redis.from_url(url)
    stream = f"bench:raw:{uuid.uuid4().hex}"
    body = os.urandom(180)
    try:
        for _ in range(0, n, 500):
            with client.pipeline(transaction=False) as pipe:
                for _entry in range(500):
                    pipe.xadd(stream, {"__data__": body})
                pipe.execute()
        client.xgroup_create(stream, "g", id="0")
        done = 0
        start = time.perf_counter()
        while done < n:
            reply: Any = client.xreadgroup("g", "c", {stream: ">"}, count=count)
            ids = [entry_id for entry_id, _fields in reply[0][1]]
            client.xack(stream, "g", *ids)
            done += len(ids)
        return round(n / (time.perf_counter() - start))
    finally:
        client.delete(stream)
        client.close()


def run(
    events: int = 200_000, *, rate: float = 50_000, seconds: float = 30.0, quiet: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="metastream-e2e-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        home = Path(tmp) / "home"
        env = _env(server.url, home, f"bench:{uuid.uuid4().hex}")
        db = home / "metastream.db"
        consumer = subprocess.Popen(
            [sys.executable, "-m", "metastream", "consume"],
            env={**env, "METASTREAM_PROJECTOR": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        projector: subprocess.Popen[bytes] | None = None
        try:
            with _when_ready(db, consumer) as reader:
                projector = subprocess.Popen(
                    [sys.executable, "-m", "metastream.projections"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                say(quiet, f"e2e benchmark: {events:,} events: producer, consumer, projector")
                pids = {"consumer": consumer.pid, "projector": projector.pid}
                if server.pid:
                    pids["redis"] = server.pid
                result = _throughput(env, reader, events, pids)
                rss = {role: [_rss_mb(pid)] for role, pid in pids.items()}
                say(quiet, f"  lag at a steady {rate:,.0f} events/s for {seconds:g} s")
                result.update(_lag(env, reader, rate, seconds))
                for role, pid in pids.items():
                    rss[role].append(_rss_mb(pid))
                result["rss_mb"] = rss
                result["log_events"] = reader.head()
            projector.terminate()
            projector.wait(60)
            say(quiet, "  the projector rebuilding the views from the whole log")
            result["projector_events_per_s"] = _rebuild(db)
            say(quiet, "  ceilings: pipelined XADD, XREADGROUP + XACK")
            result["raw_xadd_per_s"] = _raw_xadd(server.url)
            result["raw_xreadgroup_xack_per_s"] = _raw_xreadgroup_xack(server.url)
            result["e2e_vs_xadd"] = round(result["e2e_events_per_s"] / result["raw_xadd_per_s"], 2)
        finally:
            for process in (projector, consumer):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(60)
            server.stop()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    windows = ", ".join(f"{w:,.0f}" for w in result["lag_p99_ms_by_window"])
    rss_line = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in result["rss_mb"].items())
    cpu_line = ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_event"].items())
    say(
        quiet,
        f"  producer call   median {result['producer_call_median_us']} µs, "
        f"p99 {result['producer_call_p99_us']} µs   (targets <= 5 and <= 50)\n"
        f"  end to end      {result['e2e_events_per_s']:>9,} events/s   "
        f"({result['e2e_vs_xadd']}x the pipelined XADD ceiling; target >= 0.9x)\n"
        f"  consumer        {result['consumer_events_per_s']:>9,} events/s   (into the log)\n"
        f"  projector       {result['projector_events_per_s']:>9,} events/s   "
        "(rebuilding every view from the log)\n"
        f"  lag at {rate:,.0f}/s  p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms "
        f"(target p99 < 1,000, flat); the consumer kept up with "
        f"{result['consumed_events_per_s']:,} events/s\n"
        f"  lag p99 by {LAG_WINDOW:g} s  {windows} ms\n"
        f"  CPU per event   {cpu_line} (µs)\n"
        f"  memory (MB)     {rss_line} (after phase 1 -> after {result['log_events']:,} "
        "events)\n"
        f"  raw XADD        {result['raw_xadd_per_s']:>9,} entries/s (redis-py pipelines of 500)\n"
        f"  raw XREADGROUP  {result['raw_xreadgroup_xack_per_s']:>9,} entries/s "
        "(COUNT 1000, then one XACK of their ids)",
    )
    return result


def main(events: int, rate: float, seconds: float, as_json: bool) -> int:
    result = run(events, rate=rate, seconds=seconds)
    if as_json:
        print(json.dumps(result))
    return 0
