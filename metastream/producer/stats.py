"""What a producer has done so far, as numbers users can read (``Producer.stats``)."""

from __future__ import annotations

import msgspec


class ProducerStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a producer's counters.

    Every published event is counted once in ``queued``, then ends up either
    in ``sent`` (acknowledged by Redis straight from memory) or in ``spooled``
    (written to the local spool file); spooled events are counted again in
    ``resent`` once Redis acknowledged them from the spool. ``resent`` also
    counts events this producer took over from the spool files of producers
    that died. Nothing is ever dropped, so ``dropped`` is always 0: it is
    there so that dashboards written against other producers can show it.

    Attributes:
        queued: events passed to ``publish()``.
        sent: events acknowledged by Redis straight from memory.
        spooled: events written to this process's spool (Redis unreachable,
            queue over ``max_queue_bytes``, or the producer closing).
        resent: events acknowledged by Redis from a spool file.
        failed: connection attempts and batch sends that failed.
        dropped: always 0.
        pending: events in memory that are neither sent nor spooled yet.
        pending_bytes: their size in bytes (bounded by ``max_queue_bytes``).
        spool_backlog: events this producer spooled that Redis has not
            acknowledged yet.
        set_aside: events of this producer's spool that Redis would not take
            (after retries), moved to ``.failed`` files (``metastream spool list``).
        connected: whether the producer holds a working Redis connection.
    """

    queued: int = 0
    sent: int = 0
    spooled: int = 0
    resent: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    pending_bytes: int = 0
    spool_backlog: int = 0
    set_aside: int = 0
    connected: bool = False
