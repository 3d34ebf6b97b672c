"""``subscribe(handler, group=..., from_=..., filter=...)``: a Python service's subscription.

A :class:`Subscription` is a FastStream app (``subscription.app``, for
``faststream run``) whose startup does the switch-over (``switchover.py``)
and whose one subscriber follows the group (``follow.py``);
:meth:`Subscription.run` runs it in this process until SIGINT/SIGTERM or
:meth:`Subscription.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis.asyncio as aredis
from faststream import FastStream

from metastream import config, constants
from metastream.config import Settings
from metastream.consumer import wire
from metastream.consumer.broker import FASTSTREAM_LOGGER, batch_subscriber
from metastream.consumer.entries import Entry
from metastream.errors import NotRunning
from metastream.processes import consumer_name
from metastream.subscriptions.deliver import Deliverer, Handler
from metastream.subscriptions.filters import EVERYTHING, EventFilter
from metastream.subscriptions.follow import Follower
from metastream.subscriptions.history import History, open_history
from metastream.subscriptions.keys import SubscriptionKeys
from metastream.subscriptions.knowledge import RunKnowledge
from metastream.subscriptions.lock import SwitchLock
from metastream.subscriptions.state import SwitchState
from metastream.subscriptions.switchover import CatchUp, Start, prepare

log = logging.getLogger("metastream.subscriptions")

GRACEFUL_TIMEOUT: Final = 15.0
LOCK_SECONDS: Final = 30.0
"""How long the switch-over's lock outlives a process that died holding it."""
RETRY_AFTER_ENV: Final = "METASTREAM_SUBSCRIBE_RETRY_AFTER"


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {text!r}")
    return value


@dataclass(frozen=True)
class SubscribeOptions:
    """How a subscription connects and retries; every field has a default from the environment.

    ``redis_url``/``stream``/``log_group``: ``$METASTREAM_REDIS_URL`` (else the
    local stack's), ``$METASTREAM_STREAM``, ``$METASTREAM_GROUP``.
    """

    redis_url: str | None = None
    stream: str | None = None
    log_group: str | None = None
    consumer: str | None = None
    """This process's name in the group (default ``host-pid``: one per process)."""
    max_deliveries: int = 5
    """Tries of a failing handler before its event goes to the dead letters."""
    retry_after: float = field(default_factory=lambda: _env_float(RETRY_AFTER_ENV, 5.0))
    """Seconds a failed (or abandoned) entry stays pending before it is tried again
    (default ``$METASTREAM_SUBSCRIBE_RETRY_AFTER``, else 5)."""
    batch: int = 500
    """Entries per read."""
    token: str | None = None
    """The events feed's token (default ``$METASTREAM_UI_TOKEN``)."""
    settings: Settings | None = field(default=None, repr=False)


def _history(
    where: str | Path | History | None, settings: Settings, token: str | None
) -> History | None:
    if isinstance(where, History):
        return where
    if where is None:
        url = os.environ.get("METASTREAM_UI_URL")
        if url:
            where = url
        elif settings.db.exists():
            where = settings.db
        else:
            return None
    return open_history(where, token)


class Subscription:
    """One group's subscription: built by :func:`subscribe`; run with :meth:`run` or ``.app``."""

    def __init__(
        self,
        handler: Handler,
        *,
        group: str,
        from_: Start = "start",
        event_filter: EventFilter = EVERYTHING,
        history: str | Path | History | None = None,
        options: SubscribeOptions | None = None,
    ) -> None:
        if not (from_ in ("start", "now") or (isinstance(from_, int) and from_ >= 0)):
            raise ValueError(f"from_ must be 'start', 'now' or a log position, not {from_!r}")
        options = options or SubscribeOptions()
        settings = options.settings or Settings.from_env()
        url = options.redis_url or config.redis_url(settings)
        if not url:
            raise NotRunning(
                "no Redis to subscribe to: start the local stack with `metastream up`, "
                "or set METASTREAM_REDIS_URL"
            )
        self.handler = handler
        self.url = url
        self.group = group
        self.from_ = from_
        self.filter = event_filter
        self.options = options
        self.keys = SubscriptionKeys(options.stream or settings.stream, group)
        self.log_group = options.log_group or settings.group
        if not group or group in (self.log_group, constants.GROUP):
            raise ValueError(f"choose a consumer group of your own, not {group!r}")
        self.consumer = options.consumer or consumer_name()
        self._history_spec = history
        self._settings = settings
        self.state: SwitchState | None = None
        self.client: aredis.Redis | None = None
        self.follower: Follower | None = None
        self.catch_up: CatchUp | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started = asyncio.Event()
        """Set once the subscriber is following the stream (after any catch-up)."""
        self.broker, subscriber = batch_subscriber(
            url,
            stream=self.keys.stream,
            group=group,
            consumer=self.consumer,
            max_records=options.batch,
            graceful_timeout=GRACEFUL_TIMEOUT,
            title=f"metastream-subscription-{group}",
            description="metastream events for one subscriber group.",
        )

        async def on_entries(entries: list[Entry]) -> None:
            assert self.follower is not None
            await self.follower.handle(entries)

        subscriber(on_entries)
        self._subscriber = subscriber
        self.app = FastStream(
            self.broker,
            logger=FASTSTREAM_LOGGER,
            on_startup=[self._open],
            after_startup=[self._start_retries],
            on_shutdown=[self._stop_retries],
            after_shutdown=[self._close],
        )

    @property
    def dead_letters(self) -> str:
        """The stream of this group's dead letters."""
        return self.keys.dead_letters

    async def _open(self) -> None:
        """Connect, do the switch-over (catching up if the group is new)."""
        client = wire.client(self.url)
        self.client = client
        options = self.options
        history: History | None = None
        try:
            # XREADGROUP's replies left as hiredis parsed them, from the first read on.
            wire.install(await self.broker.connect())
            knowledge = None
            if self.filter.needs_pipelines:
                knowledge = RunKnowledge(self.keys.runs)
                await knowledge.load(client)
            deliverer = Deliverer(
                self.handler,
                client,
                stream=self.keys.stream,
                group=self.group,
                consumer=self.consumer,
                dead_letters=self.keys.dead_letters,
            )
            history = _history(self._history_spec, self._settings, options.token)
            # One process of the group does the switch-over; others started with it wait
            # here, then find the group live (lock.py: a dead holder is replaced).
            lock = SwitchLock(client, self.keys.lock, self.consumer, LOCK_SECONDS)
            await lock.acquire()
            try:
                state = await prepare(client, self.keys, self.log_group, history, self.from_)
                if state.stage == "catchup":
                    if history is None:
                        raise ValueError(
                            f"the group {self.group!r} is catching up from the event log: "
                            "give history= (the events feed's URL or the database file)"
                        )
                    self.catch_up = CatchUp(
                        client,
                        self.keys,
                        history,
                        deliverer,
                        self.filter,
                        knowledge,
                        options.max_deliveries,
                        on_page=lock.renew,
                    )
                    await self.catch_up.run(state)
            finally:
                await lock.release()
            self.state = state
            self.follower = Follower(
                client,
                self.keys,
                deliverer,
                self.filter,
                knowledge,
                consumer=self.consumer,
                max_deliveries=options.max_deliveries,
                retry_after_ms=int(options.retry_after * 1000),
            )
            self.follower.start_from(state)
        except BaseException:
            await self.broker.stop()  # connected above; FastStream never started it
            await self._close()
            raise
        finally:
            if history is not None and history is not self._history_spec:
                await history.close()

    async def _start_retries(self) -> None:
        assert self.follower is not None
        self._tasks.append(asyncio.create_task(self.follower.reclaim_loop()))
        self.started.set()

    async def _stop_retries(self) -> None:
        # The subscriber first: its read in flight is cancelled, not cut by the broker
        # closing its connections (which FastStream would log as a fetch error).
        await self._subscriber.stop()
        if self.follower is not None:
            self.follower.stop()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM or :meth:`stop`."""
        await self.app.run()

    def run(self) -> None:
        """Run in this process (blocks) until SIGINT/SIGTERM or :meth:`stop`."""
        asyncio.run(self.serve())

    def stop(self) -> None:
        """Ask the subscription to stop (after the batch in hand)."""
        self.app.exit()

    async def forget(self) -> None:
        """Delete the group and what the subscription keeps in Redis (not its dead letters)."""
        client = aredis.Redis.from_url(self.url)
        try:
            await client.xgroup_destroy(self.keys.stream, self.group)
            await client.delete(*self.keys.all())
        finally:
            await client.aclose()


def subscribe(
    handler: Handler,
    *,
    group: str,
    from_: Start = "start",
    filter: EventFilter | None = None,
    history: str | Path | History | None = None,
    types: str | Iterable[str] | None = None,
    pipelines: str | Iterable[str] | None = None,
    kinds: str | Iterable[str] | None = None,
    keys: str | Iterable[str] | None = None,
    options: SubscribeOptions | None = None,
) -> Subscription:
    """Subscribe ``handler`` to metastream's events as consumer group ``group``.

    ``handler(event)`` (a function or coroutine function) gets each event,
    decoded, at least once: deduplicate by ``event.id``. A new group starts
    after log position ``from_`` (``"start"``: the whole history; ``"now"``:
    only what is published from now on): it replays the log from
    ``history`` (the events feed URL of ``metastream ui``, or the database
    file; default ``$METASTREAM_UI_URL``, else the local database), then
    follows the stream with no gap and no duplicate. An existing group
    continues where it acknowledged. Filter with ``filter=EventFilter.of(...)``
    or the shortcuts ``types``, ``pipelines``, ``kinds``, ``keys``.

    Nothing happens until the subscription runs: ``subscription.run()``
    (blocking), ``await subscription.serve()``, or ``faststream run
    module:subscription.app``.
    """
    if filter is None:
        filter = EventFilter.of(types, pipelines, kinds, keys)
    elif any(x is not None for x in (types, pipelines, kinds, keys)):
        raise ValueError("give filter= or the types/pipelines/kinds/keys shortcuts, not both")
    return Subscription(
        handler, group=group, from_=from_, event_filter=filter, history=history, options=options
    )
