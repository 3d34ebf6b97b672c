"""One batch of stream entries into the event log: decode, dead-letter, ingest, then XACK.

Both ways entries reach the consumer (the FastStream subscriber reading new
entries, and the reclaim loop taking over entries a dead consumer left
pending) go through :meth:`Ingestor.process`, so both give the same
guarantees:

* Each entry is decoded on its own (in the store's thread). One that cannot
  be decoded, has no ``__data__`` field, or was delivered more than
  ``max_deliveries`` times, is written to the dead-letter stream and acked,
  in one MULTI; the rest of the batch goes on.
* The decodable entries are appended to the log and applied to the
  projections in one SQLite transaction (``Store.ingest``, deduplicated by
  event id), and acked only once that transaction has committed. A crash
  before the XACK leaves them pending: another consumer (or this one,
  restarted) reclaims them and the log ignores the events it already has.
* If the transaction fails, nothing is acked and the exception propagates:
  the entries stay pending and come back through the reclaim loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis.asyncio as aredis

from metastream.config import Settings
from metastream.consumer.dead_letters import dead_letter_fields
from metastream.consumer.entries import DATA_KEY, Entry
from metastream.projections import Store

log = logging.getLogger("metastream.consumer")

TEST_HOOK_ENV: Final = "METASTREAM_TEST_HOOK"
"""For the crash tests only: ``<stage>:kill`` or ``<stage>:sleep:<seconds>``.

``stage`` is ``before-commit`` (the batch is read, nothing written) or
``after-commit`` (the SQLite transaction committed, the entries not yet
acked). It fires once per process, on the first batch that gets there. With
``METASTREAM_TEST_HOOK_MARK`` set, that file is created when it fires, so a
test knows the consumer is inside a batch.
"""
TEST_HOOK_MARK_ENV: Final = "METASTREAM_TEST_HOOK_MARK"


@dataclass
class Stats:
    """What this process has done, for the periodic log line and for tests."""

    batches: int = 0
    entries: int = 0
    new: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    since: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Rejected:
    entry: Entry
    reason: str
    deliveries: int | None = None


class _TestHook:
    """The crash-test hook (see ``TEST_HOOK_ENV``); inert unless the variable is set."""

    def __init__(self, spec: str | None, mark: str | None) -> None:
        self.stage, _, self.action = (spec or "").partition(":")
        self.mark = mark
        self.fired = False

    async def __call__(self, stage: str) -> None:
        if self.fired or stage != self.stage:
            return
        self.fired = True
        if self.mark:
            Path(self.mark).touch()  # noqa: ASYNC240  # tests only, a tiny file
        log.warning("test hook: %s at %s", self.action, stage)
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action.startswith("sleep:"):
            await asyncio.sleep(float(self.action.split(":", 1)[1]))


class Ingestor:
    """Processes batches of entries of one stream for one consumer of one group."""

    def __init__(
        self,
        store: Store,
        client: aredis.Redis,
        settings: Settings,
        consumer: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.store = store
        self.client = client
        self.stream = settings.stream
        self.group = settings.group
        self.dead_letter_stream = settings.dead_letter_stream
        self.max_deliveries = settings.max_deliveries
        self.consumer = consumer
        self.stats = Stats()
        self._hook = _TestHook(env.get(TEST_HOOK_ENV), env.get(TEST_HOOK_MARK_ENV))

    def split(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> tuple[list[bytes], list[bytes], list[Rejected]]:
        """``(bodies, their entry ids, rejected entries)``; deleted entries are in neither.

        Bodies are decoded later, in the store's thread (``Store.ingest_encoded``).
        """
        bodies: list[bytes] = []
        ids: list[bytes] = []
        rejected: list[Rejected] = []
        limit = self.max_deliveries
        for entry in entries:
            fields = entry.fields
            if fields is None:  # trimmed or XDELed while pending: nothing to keep
                continue
            count = deliveries.get(entry.id) if deliveries else None
            if count is not None and count > limit:
                reason = f"delivered {count} times, more than the limit of {limit}"
                rejected.append(Rejected(entry, reason, count))
                continue
            body = fields.get(DATA_KEY)
            if body is None:
                names = ", ".join(sorted(k.decode(errors="replace") for k in fields))
                rejected.append(Rejected(entry, f"no __data__ field (fields: {names})", count))
                continue
            bodies.append(body)
            ids.append(entry.id)
        return bodies, ids, rejected

    async def process(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> None:
        """Ingest ``entries`` and acknowledge them; ``deliveries`` are XPENDING's counts.

        Raises if the SQLite transaction fails, leaving the decodable entries
        pending (the rejected ones are dead-lettered and acked).
        """
        if not entries:
            return
        bodies, ids, rejected = self.split(entries, deliveries)
        vanished = [e.id for e in entries if e.fields is None]
        if rejected or vanished:
            await self._dead_letter(rejected, vanished)
        if bodies:
            await self._hook("before-commit")
            result, undecodable = await self.store.ingest_encoded(bodies)
            await self._hook("after-commit")
            if undecodable:
                by_id = {e.id: e for e in entries}
                bad = {i for i, _ in undecodable}
                await self._dead_letter(
                    [
                        Rejected(
                            by_id[ids[i]], reason, deliveries.get(ids[i]) if deliveries else None
                        )
                        for i, reason in undecodable
                    ],
                    (),
                )
                ids = [entry_id for i, entry_id in enumerate(ids) if i not in bad]
            if ids:
                await self.client.xack(self.stream, self.group, *ids)
            self.stats.new += len(result.new)
            self.stats.duplicates += result.duplicates
        self.stats.batches += 1
        self.stats.entries += len(entries)

    async def _dead_letter(self, rejected: Sequence[Rejected], vanished: Sequence[bytes]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for r in rejected:
                fields = dead_letter_fields(
                    r.entry,
                    r.reason,
                    stream=self.stream,
                    group=self.group,
                    consumer=self.consumer,
                    deliveries=r.deliveries,
                )
                pipe.xadd(self.dead_letter_stream, fields)  # type: ignore[arg-type]
            pipe.xack(self.stream, self.group, *[r.entry.id for r in rejected], *vanished)
            await pipe.execute()
        for r in rejected:
            log.warning(
                "dead-lettered entry %s of %s: %s", r.entry.id.decode(), self.stream, r.reason
            )
        self.stats.dead_lettered += len(rejected)
