"""The append-only event log: the port, SQLite (the real one) and memory (for tests)."""

from metastream.eventlog.base import AppendResult, EventLog, Incoming, LogRecord, Undecodable
from metastream.eventlog.database import Database
from metastream.eventlog.memory import MemoryEventLog
from metastream.eventlog.sqlite import SqliteEventLog, connect, translated

__all__ = [
    "AppendResult",
    "Database",
    "EventLog",
    "Incoming",
    "LogRecord",
    "MemoryEventLog",
    "SqliteEventLog",
    "Undecodable",
    "connect",
    "translated",
]
