"""A new group's switch-over from the event log to the stream: no event lost, none doubled.

The log is the system of record; the log's consumer group (``metastream``)
acks an entry only once its event is committed to the log, and trimming
never passes an entry some group has not acked. A new subscriber group:

1. ``h1`` := the log head; then ``d`` := the log group's last-delivered id.
   Wait until the log group has no pending entry ``<= d``: every entry up to
   ``d`` is then in the log (or was dead-lettered by the consumer as
   undecodable, and so is in neither).
2. ``XGROUP CREATE stream group d``: the group will read every entry after
   ``d``, and trimming keeps them for it from now on. An entry after ``d``
   trimmed before this was acked by the log group, so it is in the log at a
   position ``<= head`` (read next).
3. ``head`` := the log head.
4. ``d2`` := the log group's last-delivered id, read now.
5. Catch up: deliver the log's events at positions ``(from, head]``. The
   ids of those after ``h1`` go to the ``seen`` set first.
6. Follow the group from ``d``. An entry ``<= d2`` may hold an event the
   catch-up already delivered: such an event was delivered to the log group
   after ``d`` was read, so it was committed after ``h1`` was read, so it is
   in ``seen``; it is acknowledged without being delivered. An entry
   ``> d2`` cannot have been in the log at ``head``: it was delivered to the
   log group after ``head`` was read.

The state goes to Redis before each step's effect (``state.py``), so a
crash at any point resumes: before the group exists, from step 1 again;
after, from step 3 with the same ``h1`` and ``d`` (each step's reasoning
needs only the order of the reads, which resuming keeps). An existing group
without that state is simply followed (no catch-up). ``from_="now"``
creates the group at ``$``.

An event published twice by its producer (a retried publish: two entries,
one event id) reaches the log once but may reach a subscriber twice, like
any at-least-once delivery: the handler deduplicates by event id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, TypeAlias

import redis.asyncio as aredis

from metastream.consumer.group import ensure_group, group_info
from metastream.errors import NotRunning
from metastream.subscriptions.deliver import Deliverer
from metastream.subscriptions.filters import EventFilter
from metastream.subscriptions.history import PAGE, History, LogItem
from metastream.subscriptions.keys import SubscriptionKeys
from metastream.subscriptions.knowledge import RunKnowledge, wanted
from metastream.subscriptions.state import SwitchState

log = logging.getLogger("metastream.subscriptions")

Start: TypeAlias = int | Literal["start", "now"]

POLL: Final = 0.05
"""Seconds between two looks while waiting (for the log group's pending entries, for the feed)."""
WAIT_WARNING: Final = 10.0
"""Seconds of waiting after which a warning says what is awaited."""
RETRY_PAUSE: Final = 0.1
"""Seconds between two tries of a failing handler in the catch-up."""


async def last_delivered(client: aredis.Redis, stream: str, log_group: str) -> str:
    info = await group_info(client, stream, log_group)
    if info is None:
        raise NotRunning(
            f"the stream {stream} has no consumer group {log_group!r}: nothing writes the "
            "event log a new subscriber catches up from. Start the consumer (`metastream up`) "
            "first, or subscribe with from_='now'"
        )
    raw = info["last-delivered-id"]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def wait_committed(client: aredis.Redis, stream: str, log_group: str, d: str) -> None:
    """Return once the log group has no pending entry ``<= d``."""
    started = warned = time.monotonic()
    while await client.xpending_range(stream, log_group, min="-", max=d, count=1):
        if time.monotonic() - warned > WAIT_WARNING:
            warned = time.monotonic()
            log.warning(
                "waiting %.0f s for the consumer of %s to commit the entries up to %s "
                "(is it running?)",
                warned - started,
                stream,
                d,
            )
        await asyncio.sleep(POLL)


async def prepare(
    client: aredis.Redis,
    keys: SubscriptionKeys,
    log_group: str,
    history: History | None,
    from_: Start,
) -> SwitchState:
    """Create the group if it is new (steps 1-4) and say what is left to do."""
    state = await SwitchState.load(client, keys.state)
    exists = await group_info(client, keys.stream, keys.group) is not None
    if exists and (state is None or state.stage != "starting"):
        return state or SwitchState("live")
    if not exists and state is not None and state.stage != "starting":
        log.warning(
            "the group %s of %s is gone (Redis lost its data, or the group was deleted): "
            "subscribing it again from %s",
            keys.group,
            keys.stream,
            from_,
        )
        state = None
    if not exists and from_ == "now":
        await ensure_group(client, keys.stream, keys.group, at="$")
        state = SwitchState("live")
        await state.save(client, keys.state)
        return state
    if history is None:
        raise ValueError(
            f"the new group {keys.group!r} must catch up from the event log: give the events "
            "feed's URL (metastream ui) or the database file as history=, or use from_='now'"
        )
    start = 0 if from_ in ("start", "now") else int(from_)
    if start < 0:
        raise ValueError(f"from_ must be a log position (0 or more), 'start' or 'now', not {start}")
    if not exists:
        # Step 1; a crash before the group exists starts here again.
        h1 = await history.head()
        d = await last_delivered(client, keys.stream, log_group)
        await wait_committed(client, keys.stream, log_group, d)
        state = SwitchState("starting", start=start, h1=h1, d=d, after=start)
        await client.delete(keys.seen)
        await state.save(client, keys.state)
        # Step 2.
        await client.xgroup_create(keys.stream, keys.group, id=d, mkstream=True)
    assert state is not None
    # Steps 3 and 4.
    state.head = await history.head()
    state.d2 = await last_delivered(client, keys.stream, log_group)
    state.stage = "catchup"
    await state.save(client, keys.state)
    log.info(
        "group %s of %s created at %s; catching up on log positions %d..%d",
        keys.group,
        keys.stream,
        state.d,
        state.after + 1,
        state.head,
    )
    return state


class CatchUp:
    """Step 5: the log's events in ``(after, head]`` to the handler, checkpointed per page."""

    def __init__(
        self,
        client: aredis.Redis,
        keys: SubscriptionKeys,
        history: History,
        deliverer: Deliverer,
        event_filter: EventFilter,
        knowledge: RunKnowledge | None,
        max_deliveries: int,
        on_page: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.on_page = on_page
        """Called after each page (the subscription renews its lock)."""
        self.client = client
        self.keys = keys
        self.history = history
        self.deliverer = deliverer
        self.filter = event_filter
        self.knowledge = knowledge
        self.max_deliveries = max_deliveries
        self.read = 0

    async def run(self, state: SwitchState) -> None:
        waited = time.monotonic()
        while state.after < state.head:
            page = await self.history.page(state.after, min(PAGE, state.head - state.after))
            items = [item for item in page if item.position <= state.head]
            if not items:  # the feed serves only what the views applied: wait for the rest
                if time.monotonic() - waited > WAIT_WARNING:
                    waited = time.monotonic()
                    log.warning("waiting for the log to be readable up to %d", state.head)
                await asyncio.sleep(POLL)
                continue
            waited = time.monotonic()
            seen = [item.event_id for item in items if item.position > state.h1]
            if seen:
                await self.client.sadd(self.keys.seen, *seen)
            for item in items:
                await self._deliver(item)
            self.read += len(items)
            if self.knowledge is not None:
                await self.knowledge.save(self.client)
            state.after = items[-1].position
            await self.client.hset(self.keys.state, "after", str(state.after))
            if self.on_page is not None:
                await self.on_page()
        state.stage = "live"
        await self.client.hset(self.keys.state, "stage", "live")
        log.info(
            "group %s caught up to log position %d; following the stream",
            self.keys.group,
            state.head,
        )

    async def _deliver(self, item: LogItem) -> None:
        if not wanted(self.filter, self.knowledge, item.peek):
            return
        try:
            event = item.event()
        except (ValueError, TypeError) as exc:
            await self.deliverer.dead_letter(
                f"cannot decode: {exc}", item.encoded(), deliveries=0, position=item.position
            )
            return
        for attempt in range(1, self.max_deliveries + 1):
            reason = await self.deliverer.call(event)
            if reason is None:
                return
            if attempt < self.max_deliveries:
                await asyncio.sleep(RETRY_PAUSE)
        assert reason is not None
        await self.deliverer.dead_letter(
            reason, item.encoded(), deliveries=self.max_deliveries, position=item.position
        )
