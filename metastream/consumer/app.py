"""The consumer as a FastStream app: stream → event log, with reclaim and trimming beside it.

``metastream consume`` runs it, and so does ``faststream run
metastream.consumer.app:app``: the module-level ``app`` is built from the
environment (``Settings.from_env()``) the first time it is looked up, so
importing this module has no side effects.

What runs, in FastStream's lifecycle order:

* ``on_startup`` (before the broker connects): connect to Redis, create the
  group at ``0``, open the event log (and create the views' tables, so that
  readers find them), and, unless ``METASTREAM_PROJECTOR=0``, start the
  projector as a child process (``python -m metastream.projections``): it
  follows the log and writes the views, on the other core.
* the broker starts the batch subscriber: ``XREADGROUP ... COUNT
  max_records`` under this process's own consumer name; each batch is
  handed to a read-ahead queue of one (``readahead.py``) whose worker puts
  it through :class:`~metastream.consumer.ingest.Ingestor` (ack policy
  ``MANUAL``: FastStream acks nothing, the ingestor acks after the commit).
* ``after_startup``: the reclaim loop and the housekeeping loop (trimming,
  forgetting dead consumers, a progress line, starting the projector child
  again if it died) start beside the subscriber.
* ``on_shutdown`` (SIGTERM/SIGINT): the loops finish what they are doing and
  stop; then FastStream stops the subscriber, waiting up to
  ``GRACEFUL_TIMEOUT`` for the batch in hand, which is committed and acked.
* ``after_shutdown``: the batches read ahead are finished and acked, then the
  log and the Redis client are closed, and the projector child is stopped
  (SIGTERM: it commits the batch in hand).

The database's thread: the consumer runs its SQL (decode, append, commit)
in the event loop's own thread, blocking the loop for a batch (~6 ms for
1,000 events). In a thread of its own, every row's ``sqlite3_step`` gave
the GIL away and took it back from a busy event loop (the convoy effect):
the same appends cost 10-17 µs an event instead of 6-7, and end to end
(producer, consumer and projector on 2 cores) ran at 34-38k events/s
against 42-50k inline, measured side by side. While the loop writes,
Redis's reply to the next XREADGROUP (read ahead, ``readahead.py``) waits
in the socket.

Two ways the app ends by itself, handled by :func:`serve`:

* The database file is deleted or replaced under it (``identity.py``): it
  stops with nothing more acked, says so in the log, writes the reason for
  ``metastream status`` (``stopped.py``) and :func:`serve` raises
  :class:`~metastream.consumer.identity.DatabaseReplaced` (the command exits
  with 1).
* Its consumer group is gone (Redis restarted without its data, or someone
  deleted the stream): FastStream stops the subscriber on ``NOGROUP``;
  :func:`serve` logs a WARNING that Redis lost data and events may be
  missing, and starts the consumer again, which recreates the group at
  ``0`` (whatever producers add from now on, and what they spooled, is
  read).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as aredis
from faststream import FastStream
from redis.exceptions import RedisError

from metastream import config
from metastream.config import Settings
from metastream.constants import PROJECTOR_ENV
from metastream.consumer import wire
from metastream.consumer.broker import FASTSTREAM_LOGGER, batch_subscriber
from metastream.consumer.entries import Entry
from metastream.consumer.group import (
    consumer_name,
    ensure_group,
    forget_idle_consumers,
    group_exists,
)
from metastream.consumer.identity import DatabaseReplaced
from metastream.consumer.ingest import Ingestor
from metastream.consumer.readahead import ReadAhead
from metastream.consumer.reclaim import Reclaimer
from metastream.consumer.stopped import clear_stop, record_stop
from metastream.consumer.trim import trim_acked
from metastream.errors import NotRunning, StoreError
from metastream.eventlog import EventLog, SqliteEventLog, open_event_log
from metastream.eventlog.open import SETTING as EVENT_LOG_ENV
from metastream.projections.projector import Projector
from metastream.urls import connection_problem, mask_url

if TYPE_CHECKING:
    from metastream.producer.drain import SpoolDrainer

log = logging.getLogger("metastream.consumer")

GRACEFUL_TIMEOUT: Final = 15.0
"""Seconds a batch in progress may take to finish at shutdown (FastStream's default)."""
HOUSEKEEPING_INTERVAL: Final = 30.0
"""Seconds between two trims of the stream (and progress lines)."""
PROJECTOR_STOP_TIMEOUT: Final = 20.0
"""Seconds the projector child gets to commit its batch after SIGTERM before SIGKILL."""


class Consumer:
    """One consumer process: the FastStream app and what it runs beside the subscriber."""

    def __init__(
        self,
        settings: Settings,
        *,
        url: str | None = None,
        name: str | None = None,
        housekeeping_interval: float = HOUSEKEEPING_INTERVAL,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        found = url or config.redis_url(settings)
        if not found:
            raise NotRunning(
                "no Redis to consume from: start the local stack with `metastream up`, "
                "or set METASTREAM_REDIS_URL"
            )
        self.settings = settings
        self.url: str = found
        self.name = name or consumer_name()
        self.housekeeping_interval = housekeeping_interval
        self.environ = environ
        self.problem: str | None = None
        """Why this consumer stopped by itself (the database was replaced), if it did."""
        self.group_lost = False
        """Whether the subscriber stopped because the consumer group was gone (NOGROUP)."""
        self.client: aredis.Redis | None = None
        self.log: EventLog | None = None
        self.projector: subprocess.Popen[bytes] | None = None
        """The projector child process, when this consumer started one."""
        self.ingestor: Ingestor | None = None
        self.reclaimer: Reclaimer | None = None
        self.readahead: ReadAhead | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.broker, self.subscriber = batch_subscriber(
            self.url,
            stream=settings.stream,
            group=settings.group,
            consumer=self.name,
            max_records=settings.max_records,
            graceful_timeout=GRACEFUL_TIMEOUT,
            title="metastream-events",
            description="Events appended to the metastream event log.",
        )

        async def handle(entries: list[Entry]) -> None:
            if self.readahead is None:
                raise RuntimeError("the consumer is not started")
            await self.readahead.put(entries)

        self.subscriber(handle)
        self.app = FastStream(
            self.broker,
            serializer=None,
            logger=FASTSTREAM_LOGGER,
            on_startup=[self.open],
            after_startup=[self.start_background],
            on_shutdown=[self.stop_background],
            after_shutdown=[self.close],
        )

    def again(self) -> Consumer:
        """A new consumer like this one (same settings, name and options), not started."""
        return Consumer(
            self.settings,
            url=self.url,
            name=self.name,
            housekeeping_interval=self.housekeeping_interval,
            environ=self.environ,
        )

    # -- lifecycle hooks ---------------------------------------------------

    async def open(self) -> None:
        """Connect, create the group at 0, open the log, start the projector."""
        settings = self.settings
        client = wire.client(self.url)
        self.client = client
        try:
            try:
                await ensure_group(client, settings.stream, settings.group)
                # Connected here (FastStream's start reuses it) to install the raw
                # XREADGROUP replies before the subscriber's first read.
                wire.install(await self.broker.connect())
            except (RedisError, OSError) as exc:
                raise NotRunning(connection_problem(exc, self.url)) from exc
            try:
                # SQLite in the event loop's thread: see "The database's thread" above.
                self.log = await open_event_log(settings)
                if isinstance(self.log, SqliteEventLog):  # the views share its file
                    await self.log.db.run(Projector().prepare)
            except OSError as exc:  # e.g. a directory that cannot be created
                raise StoreError(f"cannot open the database {settings.db}: {exc}") from exc
        except BaseException:
            await self.broker.stop()  # connected above; FastStream never started it
            await self.close()
            raise
        clear_stop(settings)
        # What exists now lives as long as the process: keep it out of the
        # collector's passes, which otherwise rescan it while batches churn.
        gc.freeze()
        self._start_projector()
        self.ingestor = Ingestor(
            self.log,
            client,
            settings,
            self.name,
            self.environ,
            on_stop=self.stop_for,
        )
        self.reclaimer = Reclaimer(self.ingestor, client, settings.claim_idle_ms)
        self.readahead = ReadAhead(self.ingestor)
        log.info(
            "consumer %s: %s (group %s) -> %s",
            self.name,
            settings.stream,
            settings.group,
            mask_url(settings.event_log) if settings.event_log else settings.db,
        )

    def _start_projector(self) -> None:
        environ = {**os.environ, **(self.environ or {})}
        if environ.get(PROJECTOR_ENV, "1").strip() == "0":
            return
        if self.settings.event_log:  # it reads the log where this consumer writes it
            environ[EVENT_LOG_ENV] = self.settings.event_log
        self.projector = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metastream.projections",
                "--db",
                str(self.settings.db),
                "--parent",
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
            env=environ,
        )
        log.info("projector started (pid %d)", self.projector.pid)

    def restart_projector_if_gone(self) -> bool:
        """Start the projector child again if it exited (it is checked at each housekeeping).

        It resumes from the views' checkpoints: nothing was lost meanwhile,
        the views only stood still.
        """
        process = self.projector
        if process is None or process.poll() is None:
            return False
        log.error(
            "the projector (pid %d) exited with %s: starting it again (the views resume from "
            "their checkpoints)",
            process.pid,
            process.returncode,
        )
        self._start_projector()
        return True

    def _stop_projector(self) -> None:
        process, self.projector = self.projector, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(PROJECTOR_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    async def start_background(self) -> None:
        """Start the reclaim and housekeeping loops (after the subscriber is reading)."""
        assert self.reclaimer is not None
        self._stopping.clear()
        self._spawn(self.reclaimer.run(), "reclaim")
        self._spawn(self._housekeeping(), "housekeeping")

    def stop_for(self, problem: str) -> None:
        """Stop the app because of ``problem`` (nothing more is acked): log it, record it."""
        if self.problem is not None:
            return
        self.problem = problem
        log.critical("stopping: %s", problem)
        record_stop(self.settings, problem)
        self.app.exit()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"metastream-{name}"))

    async def stop_background(self) -> None:
        """Let the loops finish their current step, then end them."""
        if not self.subscriber.running and self.problem is None and self.client is not None:
            # FastStream stopped the subscriber by itself: on NOGROUP (it logged why).
            try:
                self.group_lost = not await group_exists(
                    self.client, self.settings.stream, self.settings.group
                )
            except (RedisError, OSError):
                self.group_lost = True
        self._stopping.set()
        if self.reclaimer is not None:
            self.reclaimer.stop()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=GRACEFUL_TIMEOUT)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Finish the batches read ahead, close the log and the client, stop the projector.

        Idempotent.
        """
        if self.readahead is not None:
            await self.readahead.drain(GRACEFUL_TIMEOUT)
        event_log, self.log = self.log, None
        client, self.client = self.client, None
        try:
            if event_log is not None:
                await event_log.close()
        finally:
            try:
                if client is not None:
                    await client.aclose()
            finally:
                await asyncio.to_thread(self._stop_projector)

    # -- housekeeping ------------------------------------------------------

    async def housekeep(self) -> None:
        """Trim what every group has acked, forget long-gone consumers, log progress."""
        assert self.client is not None
        settings = self.settings
        await trim_acked(self.client, settings.stream, settings.retention)
        await forget_idle_consumers(self.client, settings.stream, settings.group, keep=self.name)

    async def _housekeeping(self) -> None:
        reported = None
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.housekeeping_interval)
                return
            except TimeoutError:
                pass
            try:
                await self.housekeep()
            except (RedisError, OSError) as exc:
                log.error("trimming %s failed: %s", self.settings.stream, exc)
            self.restart_projector_if_gone()
            assert self.ingestor is not None
            stats = self.ingestor.stats
            now = (stats.new, stats.duplicates, stats.dead_lettered)
            if now != reported:
                reported = now
                log.info(
                    "%d new events in the log, %d duplicates ignored, %d dead-lettered "
                    "(%d entries in %d batches)",
                    stats.new,
                    stats.duplicates,
                    stats.dead_lettered,
                    stats.entries,
                    stats.batches,
                )


def build_app(settings: Settings | None = None, **options: Any) -> FastStream:
    """A FastStream app consuming as ``settings`` (default: from the environment) say.

    It drains this machine's spool beside the subscriber, as ``serve`` does.
    """
    consumer = Consumer(settings or Settings.from_env(), **options)
    drainers: list[SpoolDrainer] = []

    async def drain() -> None:
        drainer = start_drainer(consumer.settings, consumer.url)
        if drainer is not None:
            drainers.append(drainer)

    async def stop_draining() -> None:
        for drainer in drainers:
            await asyncio.to_thread(drainer.stop, 5.0)

    consumer.app.after_startup(drain)
    consumer.app.after_shutdown(stop_draining)
    return consumer.app


async def serve(consumer: Consumer) -> None:
    """Run ``consumer`` until SIGINT/SIGTERM; the log is closed however it ends.

    Raises :class:`DatabaseReplaced` if it stopped because its database was
    deleted or replaced; starts it again if its consumer group was lost.

    Beside it, unless ``METASTREAM_DRAIN_SPOOL=0``, a thread drains the
    spool of this machine (``$METASTREAM_HOME/spool``): spool files and
    segments left by producer processes that exited or were killed are sent
    to the stream, so they never wait for another producer to start.
    """
    drainer = start_drainer(consumer.settings, consumer.url)
    try:
        await _serve(consumer)
    finally:
        if drainer is not None:
            await asyncio.to_thread(drainer.stop, 5.0)


def start_drainer(settings: Settings, url: str) -> SpoolDrainer | None:
    """The spool drainer of this machine, started; ``None`` when it is turned off."""
    if not settings.drain_spool:
        return None
    from metastream.producer.drain import SpoolDrainer

    drainer = SpoolDrainer(settings.spool_dir, url, settings.stream)
    drainer.start()
    log.info("draining the spool in %s", settings.spool_dir)
    return drainer


async def _serve(consumer: Consumer) -> None:
    while True:
        try:
            await consumer.app.run()
        finally:
            await consumer.close()
        if consumer.problem is not None:
            raise DatabaseReplaced(consumer.problem)
        if not consumer.group_lost:
            return
        log.warning(
            "the consumer group %s of %s is gone: Redis lost its data (restarted without "
            "its AOF?) or the stream was deleted. Recreating the group at 0; events that "
            "were in the stream and not yet in the log are lost unless their producers "
            "still have them spooled: events may be missing",
            consumer.settings.group,
            consumer.settings.stream,
        )
        consumer = consumer.again()


def run(settings: Settings, **options: Any) -> None:
    """Run a consumer in this process (``metastream consume``)."""
    asyncio.run(serve(Consumer(settings, **options)))


_app: FastStream | None = None


def __getattr__(name: str) -> Any:
    """``app``: built from the environment on first use (``faststream run ...app:app``)."""
    global _app
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
