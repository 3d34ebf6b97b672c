"""A real second storage for the event log, for the drop-in tests: the log in a SQLite file
of its own (``logfile:///path/log.db``), the views in ``METASTREAM_DB``.

:func:`register` registers the backend (``register_backend``), as a package
providing PostgreSQL would when imported; a projector process gets it with
``python -c "...second_file_backend.register(); ..."``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from metastream.config import Settings
from metastream.eventlog import EventLog, SqliteEventLog, register_backend, unregister_backend
from metastream.eventlog.sqlite import SqliteLogSource, open_connection

SCHEME = "logfile"


def path_of(url: str) -> str:
    return urlsplit(url).path


async def open_log(url: str, settings: Settings) -> EventLog:
    return await SqliteEventLog.open(path_of(url), inline=True)


class FileSource(SqliteLogSource):
    """The log file read over a connection of its own, closed when the projector stops."""

    __slots__ = ()

    def close(self) -> None:
        self.conn.close()


def open_source(url: str, settings: Settings) -> FileSource:
    return FileSource(open_connection(path_of(url), synchronous="NORMAL"))


def register() -> None:
    register_backend(SCHEME, open_log, open_source)


def unregister() -> None:
    unregister_backend(SCHEME)
