"""metastream's own errors.

Every error is also a builtin, so a caller's ``except ValueError`` / ``except
KeyError`` keeps working::

    MetastreamError
     ├── ReferenceNotFound (KeyError)     a name, id or prefix matches no entity
     ├── AmbiguousReference (ValueError)  a prefix or name matches several entities
     ├── RunNameTaken (ValueError)        a run was started with a name already used
     ├── EventRejected (RuntimeError)     a logged event can never be applied
     ├── StoreError (RuntimeError)        SQLite failed (the driver's error is the cause)
     └── NotRunning (RuntimeError)        the local stack is needed but not up

Validation of ``log_metadata`` arguments raises plain ``ValueError`` /
``TypeError`` with a message that names the key, as the reference does.
"""

from __future__ import annotations


class MetastreamError(Exception):
    """Base class of every error metastream raises on purpose."""


class ReferenceNotFound(MetastreamError, KeyError):
    """A name, id or prefix does not match any entity."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class AmbiguousReference(MetastreamError, ValueError):
    """A prefix (or a duplicated name) matches several entities."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class RunNameTaken(MetastreamError, ValueError):
    """A pipeline run was started with the name of an existing run."""


class EventRejected(MetastreamError, RuntimeError):
    """An event that was published can never be applied to the views."""


class StoreError(MetastreamError, RuntimeError):
    """The SQLite store failed; the driver's error is the ``__cause__``."""


class LogElsewhere(StoreError):
    """A read needs the event log, and the log is not in the database file.

    With ``METASTREAM_EVENT_LOG`` set, the views are in the file and the log is
    in another storage, which the readers do not read yet.
    """


class NotRunning(MetastreamError, RuntimeError):
    """The local stack (``metastream up``) is required but is not running."""
