"""Taking over entries that a dead (or stuck) consumer left pending.

Redis never re-delivers a pending entry by itself, and FastStream's
subscriber only reads new entries (``>``); its own ``min_idle_time`` option
claims one entry per call and then never reads new ones. So beside the
subscriber runs this loop: ``XAUTOCLAIM ... COUNT 500`` takes entries idle
for longer than ``claim_idle_ms`` (whoever holds them, this process
included), ``XPENDING`` tells how often each was delivered, and the batch
goes through the same :class:`~metastream.consumer.ingest.Ingestor` as new
entries (an entry that keeps failing alone is dead-lettered there, see
``isolate.py``).

``claim_idle_ms`` must stay well above the time a batch takes, or entries a
live consumer is still working on are taken over (harmless for the log,
which deduplicates, but each takeover counts as a delivery).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

import redis.asyncio as aredis
from redis.exceptions import RedisError

from metastream.consumer.entries import Entry, entries_of
from metastream.consumer.group import delivery_counts
from metastream.consumer.identity import DatabaseReplaced
from metastream.consumer.ingest import Ingestor

log = logging.getLogger("metastream.consumer")

CLAIM_COUNT: Final = 500
"""Entries per XAUTOCLAIM: measured at ~112k entries/s reclaimed (FASTSTREAM-REDIS.md)."""
ERROR_BACKOFF: Final = 2.0


def idle_interval(claim_idle_ms: int) -> float:
    """Seconds between two scans of the pending list when it had nothing to claim.

    Half the idle time (an entry waits at most 1.5 x ``claim_idle_ms``),
    between 50 ms and 5 s.
    """
    return min(5.0, max(0.05, claim_idle_ms / 2000))


class Reclaimer:
    """``run()`` until ``stop()``: claims idle pending entries and ingests them."""

    def __init__(self, ingestor: Ingestor, client: aredis.Redis, claim_idle_ms: int) -> None:
        self.ingestor = ingestor
        self.client = client
        self.claim_idle_ms = claim_idle_ms
        self.interval = idle_interval(claim_idle_ms)
        self.claimed = 0
        self._stop = asyncio.Event()
        self._cursor: bytes | str = "0-0"

    def stop(self) -> None:
        """Ask the loop to end after the batch it is processing, if any."""
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed_any = await self.claim_once()
            except DatabaseReplaced:
                return  # not acked; the consumer is stopping and has said why
            except (RedisError, OSError) as exc:
                log.error("reclaiming pending entries failed: %s; retrying", exc)
                await self._sleep(ERROR_BACKOFF)
                continue
            except Exception:
                # The store failed: the entries stay pending and come back later.
                log.exception("ingesting reclaimed entries failed; they stay pending")
                await self._sleep(self.interval)
                continue
            if not claimed_any and self._cursor in ("0-0", b"0-0"):
                await self._sleep(self.interval)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def claim_once(self) -> bool:
        """One XAUTOCLAIM step from the current cursor; whether it claimed anything."""
        ing = self.ingestor
        reply = await self.client.xautoclaim(
            ing.stream,
            ing.group,
            ing.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._cursor,
            count=CLAIM_COUNT,
        )
        # Redis 7+ adds the ids of entries deleted while pending (and drops them
        # from the pending list itself); 6.2 returns them with nil fields.
        self._cursor = reply[0]
        entries = entries_of(reply[1])
        if not entries:
            return False
        self.claimed += len(entries)
        log.info("reclaimed %d entries idle for over %d ms", len(entries), self.claim_idle_ms)
        deliveries = await self.delivery_counts(entries)
        await ing.process(entries, deliveries)
        return True

    async def delivery_counts(self, entries: Sequence[Entry]) -> dict[bytes, int]:
        """How often each of ``entries`` (just claimed by this consumer) was delivered."""
        ing = self.ingestor
        return await delivery_counts(self.client, ing.stream, ing.group, ing.consumer, entries)
