"""The database file deleted or replaced under a running consumer: see ``eventlog/identity.py``.

The check belongs to the SQLite event log (``SqliteEventLog.problem``); the
consumer asks the log (``EventLog.problem``) and stops on an answer. Kept
here for the names the consumer and its callers import.
"""

from __future__ import annotations

from metastream.eventlog.identity import DatabaseIdentity, DatabaseReplaced

__all__ = ["DatabaseIdentity", "DatabaseReplaced"]
