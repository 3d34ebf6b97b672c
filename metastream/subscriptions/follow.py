"""Step 6 and after: following the group's entries with FastStream, retries, dead letters.

The FastStream batch subscriber reads new entries (``XREADGROUP ... >``)
under this process's own consumer name, with FastStream's acking turned off
(``AckPolicy.MANUAL``): :meth:`Follower.handle` acks each entry once the
handler has returned for it (or it was filtered out, or it is an event the
catch-up already delivered). An entry whose handler raised stays pending;
:meth:`Follower.reclaim_loop` claims pending entries idle for
``retry_after`` (``XAUTOCLAIM``; a crashed process's entries too) and hands
them over again, until one has been delivered ``max_deliveries`` times: it
then goes to the dead letters, acknowledged in the same ``MULTI``.

Filters look at the entry's bytes before decoding (``filters.peek``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

import redis.asyncio as aredis
from redis.exceptions import RedisError

from metastream.consumer.dead_letters import dead_letter_fields
from metastream.consumer.entries import Entry, entries_of, parse_id
from metastream.consumer.group import delivery_counts, group_info
from metastream.schemas import decode_event
from metastream.subscriptions.deliver import Deliverer
from metastream.subscriptions.filters import EventFilter, Peek, peek
from metastream.subscriptions.keys import SubscriptionKeys
from metastream.subscriptions.knowledge import RunKnowledge, wanted
from metastream.subscriptions.state import SwitchState

log = logging.getLogger("metastream.subscriptions")

CLAIM_COUNT: Final = 200
"""Entries claimed per ``XAUTOCLAIM``."""


class Follower:
    """Handles the group's entries: filter, skip what the catch-up delivered, deliver, ack."""

    def __init__(
        self,
        client: aredis.Redis,
        keys: SubscriptionKeys,
        deliverer: Deliverer,
        event_filter: EventFilter,
        knowledge: RunKnowledge | None,
        *,
        consumer: str,
        max_deliveries: int,
        retry_after_ms: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.deliverer = deliverer
        self.filter = event_filter
        self.knowledge = knowledge
        self.consumer = consumer
        self.max_deliveries = max_deliveries
        self.retry_after_ms = retry_after_ms
        self.window_end: tuple[int, int] = (0, 0)
        """Entries up to this id (``d2``) may hold events the catch-up delivered."""
        self.skipped = 0
        self.reasons: dict[bytes, str] = {}
        """Why the handler last failed on a pending entry (for its dead letter)."""
        self._lock = asyncio.Lock()
        self._in_flight: set[bytes] = set()
        """Entry ids read by the subscriber and not yet acked (see ``handle``)."""
        self._stopping = asyncio.Event()

    def start_from(self, state: SwitchState) -> None:
        self.window_end = parse_id(state.d2)

    async def _already_delivered(self, candidates: list[tuple[Entry, Peek]]) -> set[bytes]:
        """Entry ids among ``candidates`` (entries ``<= d2``) whose event the catch-up delivered."""
        if not candidates:
            return set()
        flags = await self.client.smismember(self.keys.seen, [p.event_id for _, p in candidates])
        return {entry.id for (entry, _), flag in zip(candidates, flags, strict=True) if flag}

    async def handle(self, entries: Sequence[Entry]) -> None:
        """Deliver ``entries`` in order; ack all but those whose handler raised.

        From their arrival until they are acked they are "in flight": the
        retry loop, which claims entries idle for ``retry_after``, leaves them
        to this call (a batch can take that long under load, or wait for the
        lock while the retry loop delivers).
        """
        ids = [e.id for e in entries]
        self._in_flight.update(ids)
        try:
            async with self._lock:
                await self._handle(entries, {})
        finally:
            self._in_flight.difference_update(ids)

    async def _handle(self, entries: Sequence[Entry], deliveries: dict[bytes, int]) -> None:
        done: list[bytes] = []
        peeked: list[tuple[Entry, Peek | None, str | None]] = []
        for entry in entries:
            data = entry.data
            if data is None:  # deleted while pending, or not a metastream entry
                peeked.append((entry, None, "the entry has no __data__ field"))
                continue
            try:
                peeked.append((entry, peek(data), None))
            except ValueError as exc:
                peeked.append((entry, None, f"cannot decode: {exc}"))
        skip: set[bytes] = set()
        if self.window_end != (0, 0):
            in_window = [
                (entry, p)
                for entry, p, _ in peeked
                if p is not None and parse_id(entry.id) <= self.window_end
            ]
            skip = await self._already_delivered(in_window)
        for entry, seen, problem in peeked:
            if seen is None:
                if entry.fields is None:
                    done.append(entry.id)
                else:
                    await self._dead_letter(entry, problem or "", deliveries.get(entry.id, 1))
                continue
            if entry.id in skip:
                self.skipped += 1
                done.append(entry.id)
                continue
            if not wanted(self.filter, self.knowledge, seen):
                done.append(entry.id)
                continue
            assert entry.data is not None
            try:
                event = decode_event(entry.data)
            except ValueError as exc:
                await self._dead_letter(entry, f"cannot decode: {exc}", deliveries.get(entry.id, 1))
                continue
            reason = await self.deliverer.call(event)
            if reason is None:
                self.reasons.pop(entry.id, None)
                done.append(entry.id)
            else:
                self.reasons[entry.id] = reason
        if self.knowledge is not None:
            await self.knowledge.save(self.client)
        if done:
            await self.client.xack(self.keys.stream, self.keys.group, *done)

    async def _dead_letter(self, entry: Entry, reason: str, deliveries: int) -> None:
        """The dead letter and the ack, in one ``MULTI``: never both or neither missing."""
        keys = self.keys
        fields = dead_letter_fields(
            entry,
            reason,
            stream=keys.stream,
            group=keys.group,
            consumer=self.consumer,
            deliveries=deliveries,
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.dead_letters, fields)  # type: ignore[arg-type]
            pipe.xack(keys.stream, keys.group, entry.id)
            await pipe.execute()
        self.reasons.pop(entry.id, None)
        self.deliverer.dead_lettered += 1
        log.error(
            "dead-lettered entry %s of %s (group %s) after %d deliveries: %s",
            entry.id.decode(),
            self.keys.stream,
            self.keys.group,
            deliveries,
            reason,
        )

    # -- retries -------------------------------------------------------------

    async def _delivery_counts(self, entries: Sequence[Entry]) -> dict[bytes, int]:
        keys = self.keys
        return await delivery_counts(self.client, keys.stream, keys.group, self.consumer, entries)

    async def reclaim(self) -> int:
        """Claim entries idle for ``retry_after``; deliver them again or dead-letter them."""
        cursor: bytes | str = "0-0"
        claimed = 0
        while True:
            reply = await self.client.xautoclaim(
                self.keys.stream,
                self.keys.group,
                self.consumer,
                min_idle_time=self.retry_after_ms,
                start_id=cursor,
                count=CLAIM_COUNT,
            )
            cursor = reply[0]
            entries = entries_of(reply[1])
            if entries:
                again = []
                async with self._lock:
                    # Only what is still this consumer's to retry: not acked by a batch while
                    # the lock was awaited (gone from its pending entries), not in a batch
                    # being delivered or waiting for the lock (that batch delivers it).
                    counts = await self._delivery_counts(entries)
                    entries = [e for e in entries if e.id in counts and e.id not in self._in_flight]
                    claimed += len(entries)
                    for entry in entries:
                        count = counts[entry.id]
                        if count > self.max_deliveries:
                            reason = self.reasons.get(entry.id) or (
                                f"delivered {count - 1} times without being acknowledged "
                                "(the handler failed, or its process died)"
                            )
                            await self._dead_letter(entry, reason, count - 1)
                        else:
                            again.append(entry)
                    await self._handle(again, counts)
            if cursor in (b"0-0", "0-0"):
                return claimed

    async def close_window(self) -> bool:
        """Forget the catch-up's ids once no entry up to ``d2`` can come again.

        That is when the group has been delivered up to ``d2`` and holds nothing
        pending up to it. Returns whether the window is closed.
        """
        if self.window_end == (0, 0):
            return True
        info = await group_info(self.client, self.keys.stream, self.keys.group)
        if info is None or parse_id(info["last-delivered-id"]) < self.window_end:
            return False
        d2 = f"{self.window_end[0]}-{self.window_end[1]}"
        if await self.client.xpending_range(
            self.keys.stream, self.keys.group, min="-", max=d2, count=1
        ):
            return False
        self.window_end = (0, 0)
        await self.client.hset(self.keys.state, "d2", "0-0")
        await self.client.delete(self.keys.seen)
        return True

    async def reclaim_loop(self) -> None:
        """Retry pending entries until :meth:`stop`; close the switch-over's window."""
        interval = max(self.retry_after_ms / 2000, 0.05)
        while not self._stopping.is_set():
            try:
                await self.close_window()
                await self.reclaim()
            except (RedisError, OSError) as exc:
                log.error("reclaiming pending entries of %s failed: %s", self.keys.group, exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()
