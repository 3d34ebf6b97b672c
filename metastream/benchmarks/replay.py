"""``metastream bench replay``: append a synthetic log, rebuild every view, query a big run.

Figures: ``append_events_per_s`` (time spent appending batches to the log
through the ``EventLog`` port, with the SQL in the caller's thread as the
consumer runs it, generation excluded), ``ingest_events_per_s`` (append plus
every projection in one transaction, ``Store.ingest``, on a separate
100k-event log: what one process doing both would reach),
``rebuild_events_per_s`` (``Store.replay`` of every projection: the
projector's code from position 0),
``run_query_ms`` (median of reading one run of 100 steps x 50 keys with its
rollups), ``peak_rss_mb``, and ``raw_sqlite_insert_per_s``: plain sqlite3
inserting the same rows (as many: the unique index slows as it grows) into
the same table in the same batches, in the same run, so the append figure
can be read against what the machine gives.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from metastream.benchmarks import say
from metastream.benchmarks.synthetic import generate, incoming_batches, one_big_run
from metastream.cli.common import ProgressBar
from metastream.eventlog import SqliteEventLog, connect
from metastream.projections import Store
from metastream.projections.store import gc_paused
from metastream.query import Reader


async def _append(path: Path, n: int, batch: int, quiet: bool) -> tuple[int, float]:
    db = await connect(path, inline=True)  # as the consumer runs it
    log = SqliteEventLog(db)
    spent = 0.0
    count = 0
    bar = ProgressBar("  append ", enabled=not quiet)
    try:
        with gc_paused():
            events = generate(n)
            for chunk in incoming_batches(events, batch):
                start = time.perf_counter()
                async with log.transaction():
                    await log.append(chunk)
                spent += time.perf_counter() - start
                count += len(chunk)
                bar(count, n)
            for chunk in incoming_batches(one_big_run(), batch):  # the run the query reads
                async with log.transaction():
                    await log.append(chunk)
    finally:
        await db.close()
    return count, spent


def _raw_sqlite(path: Path, n: int, batch: int) -> float:
    """The ceiling: plain sqlite3 inserting the same rows into the same table, same batches."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE t(position INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE,"
        " body BLOB NOT NULL)"
    )
    spent = 0.0
    try:
        with gc_paused():
            for chunk in incoming_batches(generate(n, seed=5), batch):
                rows = [(i.event.event_id, i.body) for i in chunk]
                start = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO t(event_id, body) VALUES (?, ?)", rows)
                db.execute("COMMIT")
                spent += time.perf_counter() - start
    finally:
        db.close()
    return n / spent


async def _ingest(path: Path, n: int, batch: int) -> float:
    store = await Store.open(path)
    try:
        spent = 0.0
        for chunk in incoming_batches(generate(n, seed=3), batch):
            start = time.perf_counter()
            await store.ingest(chunk)
            spent += time.perf_counter() - start
    finally:
        await store.close()
    return n / spent


async def _rebuild(path: Path, quiet: bool) -> tuple[int, float]:
    store = await Store.open(path, catch_up=False)
    try:
        bar = ProgressBar("  rebuild", enabled=not quiet)
        count = await store.replay(progress=bar)
        return count, bar.elapsed()  # the bar's clock: its last rate is the summary's
    finally:
        await store.close()


def _query_ms(path: Path, repeat: int = 30) -> float:
    with Reader(path) as reader:
        run = reader.run("big-run")
        if len(run.steps) != 100 or len(run.run_metadata) != 100 * 50:
            raise RuntimeError(f"the benchmark's big run came back wrong: {run}")
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            reader.run("big-run")
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(events: int = 1_000_000, *, batch: int = 10_000, quiet: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="metastream-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        say(quiet, f"replay benchmark: {events:,} synthetic events, batches of {batch:,}")
        appended, append_s = asyncio.run(_append(db, events, batch, quiet))
        rebuilt, rebuild_s = asyncio.run(_rebuild(db, quiet))
        query_ms = _query_ms(db)
        size_mb = db.stat().st_size / 1e6
        ingest = asyncio.run(_ingest(Path(tmp) / "ingest.db", min(events, 100_000), 1000))
        raw = _raw_sqlite(Path(tmp) / "raw.db", events, batch)
    result = {
        "events": appended,
        "append_events_per_s": round(appended / append_s),
        "raw_sqlite_insert_per_s": round(raw),
        "ingest_events_per_s": round(ingest),
        "rebuild_events_per_s": round(rebuilt / rebuild_s),
        "run_query_ms": round(query_ms, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "db_mb": round(size_mb, 1),
    }
    say(
        quiet,
        f"  append   {result['append_events_per_s']:>10,} events/s   (target >= 200,000)\n"
        f"  raw      {result['raw_sqlite_insert_per_s']:>10,} rows/s     "
        "(plain sqlite3, same rows and batches: the ceiling)\n"
        f"  ingest   {result['ingest_events_per_s']:>10,} events/s   "
        "(append + projections, batches of 1,000)\n"
        f"  rebuild  {result['rebuild_events_per_s']:>10,} events/s   (target >= 150,000)\n"
        f"  query    {result['run_query_ms']:>10} ms         "
        "(one run, 100 steps x 50 keys, rollups; target < 10)\n"
        f"  peak RSS {result['peak_rss_mb']:>10} MB\n"
        f"  database {result['db_mb']:>10} MB",
    )
    return result


def main(events: int, as_json: bool) -> int:
    result = run(events)
    if as_json:
        print(json.dumps(result))
    return 0
