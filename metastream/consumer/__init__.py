"""The consumer: Redis stream → SQLite event log and views, exactly once in effect.

A FastStream app (``metastream consume``, or ``faststream run
metastream.consumer.app:app``) with a batch subscriber, a reclaim loop for
entries left pending by dead consumers, a dead-letter stream for entries
that cannot be processed, and trimming that never passes an unacked entry.

Names are imported on first use, so that ``metastream.consumer.stopped``
(read by ``metastream status``) does not load FastStream.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metastream.consumer.app import Consumer, build_app, run, serve
    from metastream.consumer.dead_letters import (
        DeadLetter,
        count_dead_letters,
        iter_dead_letters,
        retry_dead_letters,
    )
    from metastream.consumer.entries import Entry
    from metastream.consumer.group import consumer_name, ensure_group
    from metastream.consumer.identity import DatabaseReplaced
    from metastream.consumer.ingest import Ingestor, Stats
    from metastream.consumer.reclaim import Reclaimer
    from metastream.consumer.stopped import consumer_problem
    from metastream.consumer.trim import oldest_needed, trim_acked

_WHERE = {
    "Consumer": "app",
    "build_app": "app",
    "run": "app",
    "serve": "app",
    "DeadLetter": "dead_letters",
    "count_dead_letters": "dead_letters",
    "iter_dead_letters": "dead_letters",
    "retry_dead_letters": "dead_letters",
    "Entry": "entries",
    "consumer_name": "group",
    "ensure_group": "group",
    "DatabaseReplaced": "identity",
    "Ingestor": "ingest",
    "Stats": "ingest",
    "Reclaimer": "reclaim",
    "consumer_problem": "stopped",
    "oldest_needed": "trim",
    "trim_acked": "trim",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Consumer",
    "DatabaseReplaced",
    "DeadLetter",
    "Entry",
    "Ingestor",
    "Reclaimer",
    "Stats",
    "build_app",
    "consumer_name",
    "consumer_problem",
    "count_dead_letters",
    "ensure_group",
    "iter_dead_letters",
    "oldest_needed",
    "retry_dead_letters",
    "run",
    "serve",
    "trim_acked",
]
