"""``metastream bench ui``: server time of the dashboard's heaviest reads, and SSE delivery.

One database, built in the run by the projections: 10,000 small runs (2
steps, 3 run keys and 5 keys a step), one
run of 100 steps x 50 keys, and 20 runs of 200 keys each. The app is served
by uvicorn in this process; each figure is the server's time for a request
(from the ASGI call to the last body byte, measured by a wrapper around the
app), its median and p99 over repeated requests, next to the database read
it rests on (the same query functions called directly, in the same run):

- ``run_api``: ``GET /api/v1/runs/big-run`` (metadata, rollups, 100 steps);
- ``run_page``: ``GET /runs/big-run``, the rendered page;
- ``runs_list``: ``GET /api/v1/runs?limit=50`` over 10,000 runs, and
  ``runs_list_deep``: a page 100 pages in (keyset cursor);
- ``compare``: ``GET /api/v1/compare`` of 20 runs x 200 keys;
- ``sse``: from the commit of a transaction (``Store.ingest`` returning) to
  a client of ``/api/v1/stream`` holding the message, over ``commits``
  separate commits; the read it rests on is the checkpoint poll.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from metastream.benchmarks import percentile, say
from metastream.benchmarks.synthetic import incoming_batches, one_big_run
from metastream.projections import Store
from metastream.projections.store import gc_paused
from metastream.query import Reader
from metastream.schemas import (
    ById,
    Event,
    MetadataLogged,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    new_uuid,
    prepare_metadata,
)

Timer = Callable[[], float]
BATCH = 10_000
"""Events a transaction while the database is built."""


def _small_runs(runs: int, steps: int = 2, keys: int = 5) -> Iterator[Event]:
    """``runs`` runs of ``steps`` steps, a few run keys and ``keys`` keys per step."""
    rng = random.Random(5)
    for r in range(runs):
        run_id = new_uuid()
        yield RunStarted(run_id=run_id, name=f"run-{r}", pipeline_name=f"pipeline-{r % 5}")
        yield MetadataLogged(
            target=ById(kind="pipeline_run", id=run_id),
            metadata=prepare_metadata(
                {"learning_rate": rng.random(), "epochs": rng.randrange(100), "model": "mlp"}
            ),
        )
        for s in range(steps):
            step_id = new_uuid()
            yield StepStarted(step_id=step_id, run_id=run_id, name=f"step_{s}")
            yield MetadataLogged(
                target=ById(kind="step_run", id=step_id),
                metadata=prepare_metadata({f"key_{k}": rng.random() for k in range(keys)}),
            )
            yield StepFinished(step_id=step_id, status="completed")
        yield RunFinished(run_id=run_id, status="failed" if r % 17 == 0 else "completed")


def _compared_runs(runs: int = 20, keys: int = 200) -> Iterator[Event]:
    rng = random.Random(3)
    for r in range(runs):
        run_id = new_uuid()
        yield RunStarted(run_id=run_id, name=f"compare-{r}", pipeline_name="compare")
        metadata = {
            f"param_{k}": (rng.random() if k % 4 else f"choice-{rng.randrange(3)}")
            for k in range(keys)
        }
        yield MetadataLogged(
            target=ById(kind="pipeline_run", id=run_id), metadata=prepare_metadata(metadata)
        )
        yield RunFinished(run_id=run_id, status="completed")


async def _build(path: Path, runs: int) -> None:
    store = await Store.open(path, synchronous="OFF")
    try:
        with gc_paused():
            for source in (_small_runs(runs), one_big_run(), _compared_runs()):
                for batch in incoming_batches(source, BATCH):
                    await store.ingest(batch)
    finally:
        await store.close()


class ServerTimes:
    """An ASGI wrapper recording, per path, how long the app took for each HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                key = scope["path"] + ("?" + scope["query_string"].decode())
                self.times.setdefault(key, []).append((time.perf_counter() - start) * 1000)

        await self.app(scope, receive, timed_send)


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = percentile(ordered, 0.99)
    return {"median_ms": round(statistics.median(ordered), 3), "p99_ms": round(p99, 3)}


def _repeat(fn: Callable[[], Any], n: int) -> list[float]:
    fn()  # warm the page cache and the statement cache
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _requests(
    http: httpx.Client, times: ServerTimes, url: str, n: int
) -> tuple[dict[str, float], int]:
    response = http.get(url)
    response.raise_for_status()
    key = url if "?" in url else url + "?"
    times.times.pop(key, None)
    for _ in range(n):
        http.get(url).raise_for_status()
    return _stats(times.times[key]), len(response.content)


def _sse(
    path: Path, base: str, commits: int, reader: Reader, quiet: bool
) -> tuple[dict[str, float], dict[str, float]]:
    committed_at: dict[int, float] = {}
    received_at: dict[int, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        try:
            with (
                httpx.Client(base_url=base, timeout=30) as http,
                http.stream("GET", "/api/v1/stream") as response,
            ):
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        received_at[int(line[4:])] = time.perf_counter()
                        ready.set()
                    if done.is_set():
                        return
        except httpx.HTTPError:  # the server stops at the end of the run
            return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)

    async def commit_all() -> None:
        store = await Store.open(path)
        try:
            run_id = new_uuid()
            target = ById(kind="pipeline_run", id=run_id)
            first = [RunStarted(run_id=run_id, name="sse-run", pipeline_name="sse")]
            await store.ingest(next(incoming_batches(first, BATCH)))
            rng = random.Random(1)
            for i in range(commits):
                await asyncio.sleep(rng.uniform(0.02, 0.25))  # commits land anywhere in a poll
                event = MetadataLogged(target=target, metadata=prepare_metadata({"step": i}))
                result = await store.ingest(next(incoming_batches([event], BATCH)))
                committed_at[result.first] = time.perf_counter()
        finally:
            await store.close()

    asyncio.run(commit_all())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and max(received_at, default=0) < max(committed_at):
        time.sleep(0.05)
    done.set()
    delays = []
    for position, at in committed_at.items():
        seen = [t for p, t in received_at.items() if p >= position]
        if seen:
            delays.append((min(seen) - at) * 1000)
    if len(delays) < len(committed_at):
        say(quiet, f"  sse: {len(committed_at) - len(delays)} commits never reached the client")
    return _stats(delays), _stats(_repeat(reader.applied_through, 200))


def run(
    runs: int = 10_000, repeat: int = 30, commits: int = 60, quiet: bool = False
) -> dict[str, Any]:
    import logging

    from metastream.api import create_app, entities
    from metastream.api.serving import BackgroundServer
    from metastream.query import browse

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    with tempfile.TemporaryDirectory(prefix="metastream-bench-ui-") as tmp:
        path = Path(tmp) / "ui.db"
        say(
            quiet,
            f"ui benchmark: building {runs:,} runs, one of 100 steps x 50 keys, 20 x 200 keys",
        )
        asyncio.run(_build(path, runs))
        # What building left behind is not the server's: keep the collector off it, as a
        # `metastream ui` process (which never built anything) has nothing of it to scan.
        gc.collect()
        gc.freeze()
        times = ServerTimes(create_app(path))
        result: dict[str, Any] = {}
        with (
            Reader(path) as reader,
            BackgroundServer(times) as server,
            httpx.Client(base_url=server.url, timeout=60) as http,
        ):
            total = reader.db.execute(
                "SELECT count(*) FROM entities WHERE kind='pipeline_run'"
            ).fetchone()[0]
            say(quiet, f"  {total:,} runs, log head {reader.head():,}")
            result["database"] = {"runs": total, "events": reader.head()}

            cursor = None
            for _ in range(100):
                cursor = browse.list_runs_page(reader, limit=50, cursor=cursor).next_cursor

            def list_read(after: str | None = None) -> None:
                page = browse.list_runs_page(reader, limit=50, cursor=after)
                browse.run_metrics(reader, [r.id.bytes for r in page.runs])

            compare_refs = [f"compare-{i}" for i in range(20)]

            def compare_read() -> None:
                found, base = entities.load_comparison(reader, compare_refs, None)
                entities.comparison(reader, found, base, json=True)

            cases: list[tuple[str, str, Callable[[], Any]]] = [
                ("run_api", "/api/v1/runs/big-run", lambda: entities.run(reader, "big-run")),
                (
                    "run_page",
                    "/runs/big-run",
                    lambda: entities.run(reader, "big-run", rollups=False),
                ),
                ("runs_list", "/api/v1/runs?limit=50", list_read),
                (
                    "runs_list_deep",
                    f"/api/v1/runs?limit=50&cursor={cursor}",
                    lambda: list_read(cursor),
                ),
                ("compare", "/api/v1/compare?runs=" + ",".join(compare_refs), compare_read),
            ]
            for name, url, read in cases:
                served, size = _requests(http, times, url, repeat)
                result[name] = {
                    "server": served,
                    "database_read": _stats(_repeat(read, repeat)),
                    "response_bytes": size,
                }
            delivery, poll = _sse(path, server.url, commits, reader, quiet)
            result["sse"] = {
                "commit_to_client": delivery,
                "database_read": poll,
                "commits": commits,
            }
    targets = {"run_api": 50, "run_page": 50, "runs_list": 50, "runs_list_deep": 50, "compare": 100}
    for name, target in targets.items():
        r = result[name]
        say(
            quiet,
            f"  {name:<15} server median {r['server']['median_ms']:>7} ms  p99 "
            f"{r['server']['p99_ms']:>7} ms   database read median "
            f"{r['database_read']['median_ms']:>7} ms   (target < {target} ms)",
        )
    sse = result["sse"]
    say(
        quiet,
        f"  {'sse':<15} commit to client median {sse['commit_to_client']['median_ms']} ms  "
        f"p99 {sse['commit_to_client']['p99_ms']} ms   checkpoint poll median "
        f"{sse['database_read']['median_ms']} ms   (target p99 < 500 ms)",
    )
    return result


def main(as_json: bool, runs: int = 10_000) -> int:
    result = run(runs)
    if as_json:
        print(json.dumps(result))
    return 0
