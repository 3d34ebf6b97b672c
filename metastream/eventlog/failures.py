"""Telling a failure of the environment from a failure caused by the data.

Both the consumer (splitting a batch to find the entries that fail it) and
the projector (setting aside an event a projection cannot apply) act on an
error only when the *data* caused it; an environmental error (the database
locked, the disk full, the file gone) blames no event and is retried.

* Environmental: the store's errors (``StoreError``, which wraps SQLite's
  ``OperationalError``, a corrupt or closed database, every
  ``sqlite3.Error`` but ``IntegrityError`` and ``DataError``), ``OSError``
  and ``MemoryError``.
* Caused by the data: ``sqlite3.IntegrityError`` and ``DataError`` (a row's
  content), and any other exception (a ``TypeError``, ``KeyError``, ... the
  code raised on what it was given).
"""

from __future__ import annotations

import sqlite3

from metastream.errors import StoreError

_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError)


def is_environmental(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or the machine failed, not the data."""
    if isinstance(exc, OSError | MemoryError):
        return True
    if isinstance(exc, StoreError):  # the store failed, unless a row's content made it fail
        return not isinstance(exc.__cause__, _DATA_ERRORS)
    cause: BaseException | None = exc
    while cause is not None:  # StoreError wraps the driver's error as its cause
        if isinstance(cause, sqlite3.Error):
            return not isinstance(cause, _DATA_ERRORS)
        cause = cause.__cause__
    return False


def describe(exc: BaseException) -> str:
    """An exception as a reason to record: its type and message."""
    message = str(exc)
    name = type(exc).__qualname__
    return f"{name}: {message}" if message else name
