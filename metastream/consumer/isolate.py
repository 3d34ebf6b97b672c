"""Finding the entries that fail a batch: split it until they fail alone.

A batch is appended to the log in one SQLite transaction. When that
transaction raises, either something is wrong with the *environment* (the
database is locked, the disk is full, the file was deleted) or one or more
*entries* cannot be applied. The rule:

* **Environmental errors** never blame an entry. They are the store's
  errors (``StoreError``: SQLite's ``OperationalError``, a corrupt or
  closed database, every ``sqlite3.Error`` but ``IntegrityError`` and
  ``DataError``, which come from a row's content), ``OSError``,
  ``MemoryError``, and the database identity check (``DatabaseReplaced``,
  a ``StoreError``); ``eventlog/failures.py`` has the rule. On one of them the split
  stops: what was committed before it stays committed (and is acked), the
  rest is not acked and comes back later (reclaimed after
  ``claim_idle_ms``). A disk that stays full for an hour dead-letters
  nothing.
* **Any other error** (the append raised on the data: a ``TypeError``,
  a ``KeyError``, ...) splits the batch in halves, each tried in its own
  transaction, recursively, left to right. An entry whose one-entry
  transaction fails with such an error is a *suspect*; everything else is
  committed, once (the log deduplicates by event id, and a failed
  transaction leaves nothing behind).
* A suspect is dead-lettered, with its real exception as the reason, when
  the failure is **confirmed**: some other part of the same batch committed
  new events in the same pass, so the database and the code work for events
  and this entry is what fails (the caller decides: it knows which commits
  wrote new events). A batch in which nothing at all could be committed
  proves nothing (a bug hitting every event, a broken connection): its
  suspects stay pending and are retried; once an entry has been delivered
  more than ``max_deliveries`` times and still fails alone, it is
  dead-lettered with the same real reason (the caller applies that cap).

Cost: ``k`` bad entries among ``n`` take about ``2 k log2(n)`` extra
transactions, a few milliseconds each; a batch without a bad entry costs
nothing more than before.

An entry that kills the process (rather than raising) cannot be isolated
this way: it is redelivered each time a consumer reaches it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from metastream.eventlog.failures import describe, is_environmental

__all__ = ["Isolation", "describe", "is_environmental", "isolate"]

T = TypeVar("T")


@dataclass
class Isolation(Generic[T]):
    """What :func:`isolate` did with a batch."""

    committed: list[T] = field(default_factory=list)
    """Items whose transaction committed, in the order they were committed."""
    suspects: list[tuple[T, Exception]] = field(default_factory=list)
    """Items that failed alone with an error that is not environmental."""
    error: Exception | None = None
    """The environmental error that stopped the split; the untried items are in neither list."""
    transactions: int = 0


async def isolate(
    items: Sequence[T], commit: Callable[[Sequence[T]], Awaitable[None]]
) -> Isolation[T]:
    """``commit(items)`` in one transaction; on a non-environmental failure, split and retry.

    ``commit`` must either commit all the items it is given or nothing
    (raise). Returns what was committed, the suspects, and the environmental
    error that stopped it, if any (not raised: the caller acks what was
    committed first).
    """
    out: Isolation[T] = Isolation()

    async def attempt(part: Sequence[T]) -> bool:
        """Whether to go on (False once an environmental error stopped everything)."""
        out.transactions += 1
        try:
            await commit(part)
        except Exception as exc:
            if is_environmental(exc):
                out.error = exc
                return False
            if len(part) == 1:
                out.suspects.append((part[0], exc))
                return True
            middle = len(part) // 2
            return await attempt(part[:middle]) and await attempt(part[middle:])
        out.committed.extend(part)
        return True

    if items:
        await attempt(items)
    return out
