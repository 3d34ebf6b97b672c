"""One batch of stream entries into the event log: decode, dead-letter, append, then XACK.

Both ways entries reach the consumer (the FastStream subscriber reading new
entries, and the reclaim loop taking over entries a dead consumer left
pending) go through :meth:`Ingestor.process`, so both give the same
guarantees:

* Each entry is decoded on its own, by the log's ``append_encoded`` (with
  ``decode_incoming``). One that cannot be decoded, has no ``event_id``,
  holds a metadata value the projections could not use, or has no
  ``__data__`` field, is written to the dead-letter stream with the reason
  and acked, in one MULTI; the rest of the batch goes on.
* The decodable entries are appended to the log in one transaction
  (``EventLog.append_encoded``, deduplicated by event id), and acked only
  once that transaction has committed. Nothing else is on this path: the
  projector applies the log to the views in its own process. A crash
  before the XACK leaves them pending: another consumer (or this one,
  restarted) reclaims them and the log ignores the events it already has.
* If the transaction fails, the batch is split until the entries that fail
  alone are found (``isolate.py`` has the rule): only those are
  dead-lettered, each with its real exception as the reason; the rest is
  committed and acked. An environmental failure (database locked, disk
  full) dead-letters nothing: what it interrupted is not acked and comes
  back through the reclaim loop. Being delivered many times is not an
  entry's fault: the ``max_deliveries`` cap only dead-letters an entry that
  keeps failing alone when nothing else could be committed to confirm it.
* Before each transaction and before acking, the log is asked whether its
  storage is still the one opened (``EventLog.problem``; for SQLite, the
  database file's identity, ``eventlog/identity.py``): a database deleted
  or replaced under the consumer stops it (``on_stop``) with nothing more
  acked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis.asyncio as aredis

from metastream.config import Settings
from metastream.consumer.dead_letters import dead_letter_fields
from metastream.consumer.entries import Entry
from metastream.consumer.identity import DatabaseReplaced
from metastream.consumer.isolate import describe, isolate
from metastream.eventlog.base import AppendResult, EventLog

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
    failed_alone: int = 0
    """Entries that failed alone and were dead-lettered with their real exception."""
    split_transactions: int = 0
    """Extra transactions spent isolating entries that failed their batch."""
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
        log: EventLog,
        client: aredis.Redis,
        settings: Settings,
        consumer: str,
        environ: Mapping[str, str] | None = None,
        *,
        on_stop: Callable[[str], None] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.log = log
        self.client = client
        self.stream = settings.stream
        self.group = settings.group
        self.dead_letter_stream = settings.dead_letter_stream
        self.max_deliveries = settings.max_deliveries
        self.consumer = consumer
        self.on_stop = on_stop
        self.stopped: str | None = None
        """Why this ingestor refuses to go on (the database was replaced), once it does."""
        self.stats = Stats()
        self._hook = _TestHook(env.get(TEST_HOOK_ENV), env.get(TEST_HOOK_MARK_ENV))

    def split(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> tuple[list[bytes], list[bytes], list[Rejected]]:
        """``(bodies, their entry ids, rejected entries)``; deleted entries are in neither.

        Bodies are decoded later, by the log (``EventLog.append_encoded``).
        """
        bodies: list[bytes] = []
        ids: list[bytes] = []
        rejected: list[Rejected] = []
        for entry in entries:
            if entry.fields is None:  # trimmed or XDELed while pending: nothing to keep
                continue
            body = entry.data
            if body is None:
                names = ", ".join(sorted(k.decode(errors="replace") for k in entry.field_map()))
                count = deliveries.get(entry.id) if deliveries else None
                rejected.append(Rejected(entry, f"no __data__ field (fields: {names})", count))
                continue
            bodies.append(body)
            ids.append(entry.id)
        return bodies, ids, rejected

    def check_database(self) -> None:
        """Raise :class:`DatabaseReplaced` (and stop for good) if the log's storage is not the
        one opened (``EventLog.problem``: for SQLite, the file deleted or replaced)."""
        if self.stopped is not None:
            raise DatabaseReplaced(self.stopped)
        problem = self.log.problem()
        if problem is None:
            return
        self.stopped = problem
        if self.on_stop is not None:
            self.on_stop(problem)
        raise DatabaseReplaced(problem)

    async def process(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> None:
        """Ingest ``entries`` and acknowledge them; ``deliveries`` are XPENDING's counts.

        Entries that fail alone are dead-lettered (see the module docstring);
        raises on an environmental failure, after acking what was committed
        before it; the rest stays pending.
        """
        if not entries:
            return
        self.check_database()
        bodies, ids, rejected = self.split(entries, deliveries)
        vanished = [e.id for e in entries if e.fields is None]
        if rejected or vanished:
            await self._dead_letter(rejected, vanished)
        if bodies:
            await self._ingest(entries, bodies, ids, deliveries or {})
        self.stats.batches += 1
        self.stats.entries += len(entries)

    async def _ingest(
        self,
        entries: Sequence[Entry],
        bodies: list[bytes],
        ids: list[bytes],
        deliveries: Mapping[bytes, int],
    ) -> None:
        undecodable: dict[int, str] = {}
        applied = False  # some transaction wrote new events: the database and the code work

        async def commit(part: Sequence[int]) -> None:
            nonlocal applied
            self.check_database()
            result, bad = await self.log.append_encoded([bodies[i] for i in part])
            for j, reason in bad:
                undecodable[part[j]] = reason
            applied = applied or bool(result.new)
            self._count(result)

        await self._hook("before-commit")
        isolation = await isolate(range(len(bodies)), commit)
        await self._hook("after-commit")
        self.stats.split_transactions += isolation.transactions - 1
        by_id = {e.id: e for e in entries}

        def rejected(i: int, reason: str) -> Rejected:
            return Rejected(by_id[ids[i]], reason, deliveries.get(ids[i]))

        dead = [rejected(i, reason) for i, reason in undecodable.items()]
        left: list[tuple[int, Exception]] = []
        for i, exc in isolation.suspects:
            count = deliveries.get(ids[i], 1)
            if applied:
                dead.append(rejected(i, describe(exc)))
            elif count > self.max_deliveries:
                dead.append(rejected(i, f"{describe(exc)} (failed alone on delivery {count})"))
            else:
                left.append((i, exc))
        self.stats.failed_alone += len(dead) - len(undecodable)
        acked = [ids[i] for i in isolation.committed if i not in undecodable]
        if acked:
            self.check_database()  # committed to the file still at the path? only then ack
            await self.client.xack(self.stream, self.group, *acked)
        if dead:
            await self._dead_letter(dead, ())
        for i, exc in left:
            log.warning(
                "entry %s of %s failed alone (%s) but nothing else in its batch could be "
                "committed to confirm it is the entry's fault: left pending, retried later "
                "(dead-lettered if it still fails after %d deliveries)",
                ids[i].decode(),
                self.stream,
                describe(exc),
                self.max_deliveries,
                exc_info=exc,
            )
        if isolation.error is not None:
            raise isolation.error

    def _count(self, result: AppendResult) -> None:
        self.stats.new += len(result.new)
        self.stats.duplicates += result.duplicates

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
