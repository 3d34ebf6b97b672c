"""The consumer: Redis stream → SQLite event log and views, exactly once in effect.

A FastStream app (``metastream consume``, or ``faststream run
metastream.consumer.app:app``) with a batch subscriber, a reclaim loop for
entries left pending by dead consumers, a dead-letter stream for entries
that cannot be processed, and trimming that never passes an unacked entry.
"""

from metastream.consumer.app import Consumer, build_app, run, serve
from metastream.consumer.dead_letters import (
    DeadLetter,
    count_dead_letters,
    iter_dead_letters,
    retry_dead_letters,
)
from metastream.consumer.entries import Entry
from metastream.consumer.group import consumer_name, ensure_group
from metastream.consumer.ingest import Ingestor, Stats
from metastream.consumer.reclaim import Reclaimer
from metastream.consumer.trim import oldest_needed, trim_acked

__all__ = [
    "Consumer",
    "DeadLetter",
    "Entry",
    "Ingestor",
    "Reclaimer",
    "Stats",
    "build_app",
    "consumer_name",
    "count_dead_letters",
    "ensure_group",
    "iter_dead_letters",
    "oldest_needed",
    "retry_dead_letters",
    "run",
    "serve",
    "trim_acked",
]
