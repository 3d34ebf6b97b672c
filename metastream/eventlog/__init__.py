"""The append-only event log: the port, SQLite (the real one) and memory (for tests).

``open_event_log(settings)`` opens the one the settings name; other storages
plug in by URL scheme (``register_backend``).
"""

from metastream.eventlog.base import (
    AppendResult,
    EventLog,
    Incoming,
    LogRecord,
    LogSource,
    Undecodable,
)
from metastream.eventlog.database import Database
from metastream.eventlog.memory import MemoryEventLog, MemoryLogSource
from metastream.eventlog.open import (
    Backend,
    open_event_log,
    open_log_source,
    register_backend,
    unregister_backend,
)
from metastream.eventlog.sqlite import SqliteEventLog, SqliteLogSource, connect, translated

__all__ = [
    "Backend",
    "AppendResult",
    "Database",
    "EventLog",
    "Incoming",
    "LogRecord",
    "LogSource",
    "MemoryEventLog",
    "MemoryLogSource",
    "SqliteEventLog",
    "SqliteLogSource",
    "Undecodable",
    "connect",
    "open_event_log",
    "open_log_source",
    "register_backend",
    "translated",
    "unregister_backend",
]
