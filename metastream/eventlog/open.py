"""Opening the event log the settings name: the SQLite file, or a backend registered by scheme.

``await open_event_log(settings)`` is how the consumer opens its log:

* ``settings.event_log`` unset (``METASTREAM_EVENT_LOG``, the default): the
  SQLite log in the database file ``settings.db``, the file that also holds
  the views, opened as the consumer has always run it: its SQL in the event
  loop's own thread (``inline=True``, measured faster: see "The database's
  thread" in ``consumer/app.py``), the file's identity recorded for
  ``EventLog.problem``.
* ``settings.event_log`` a URL (``postgresql://user:PASSWORD@host/db``): the
  backend registered for its scheme opens it. ``settings.db`` stays a path:
  the URL has a setting of its own rather than a second meaning for the
  database file, which the projector, the readers and the API still open as
  SQLite.

A backend is ``opener(url, settings)``, awaited, returning an open
:class:`~metastream.eventlog.base.EventLog` (the consumer's side), and
``source(url, settings)``, returning a
:class:`~metastream.eventlog.base.LogSource` (the projector's side: it runs
no event loop; a ``close()`` it has is called when the projector stops). It
is registered with :func:`register_backend` (a package that provides one
calls it when imported), or found without any import of it by the consumer
or the projector through the ``metastream.event_log_backends`` entry point
group: an entry point named after the scheme whose object is a
:class:`Backend`, or the opener alone (the projector then cannot follow that
log). A URL whose scheme has no backend is a
:class:`~metastream.errors.StoreError` naming the known ones.

:func:`open_log_source` is the projector's twin of :func:`open_event_log`:
``None`` by default (the projector reads the SQLite log over the connection
it writes the views with), else the backend's source.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from metastream.config import Settings
from metastream.errors import StoreError
from metastream.eventlog.base import EventLog, LogSource
from metastream.eventlog.sqlite import SqliteEventLog
from metastream.urls import mask_url

Opener = Callable[[str, Settings], Awaitable[EventLog]]
"""``opener(url, settings)``: the event log at ``url``, open."""
SourceOpener = Callable[[str, Settings], LogSource]
"""``source(url, settings)``: a synchronous reader of the log at ``url`` (the projector's)."""


class Backend(NamedTuple):
    """A storage for the event log: how the consumer opens it, how the projector reads it."""

    open_log: Opener
    open_source: SourceOpener | None = None


ENTRY_POINTS: Final = "metastream.event_log_backends"
"""The entry point group where installed packages name their backends (by scheme)."""
SETTING: Final = "METASTREAM_EVENT_LOG"

_backends: dict[str, Backend] = {}


def register_backend(scheme: str, opener: Opener, source: SourceOpener | None = None) -> None:
    """Open URLs of ``scheme`` (``postgresql``) with ``opener`` (and ``source`` for the
    projector); replaces an earlier one."""
    _backends[scheme.lower()] = Backend(opener, source)


def unregister_backend(scheme: str) -> None:
    """Forget the backend of ``scheme`` (tests); nothing if there is none."""
    _backends.pop(scheme.lower(), None)


def backends() -> list[str]:
    """The schemes a backend is known for: registered, or named by an installed entry point."""
    installed = {ep.name.lower() for ep in entry_points(group=ENTRY_POINTS)}
    return sorted(installed | set(_backends))


def _backend(scheme: str) -> Backend | None:
    found = _backends.get(scheme)
    if found is None:
        for ep in entry_points(group=ENTRY_POINTS):
            if ep.name.lower() == scheme:
                named = ep.load()
                found = named if isinstance(named, Backend) else Backend(named)
                _backends[scheme] = found
                break
    return found


def _backend_for(settings: Settings, url: str) -> Backend:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise StoreError(
            f"{SETTING} is not a URL (scheme://...); leave it unset for the SQLite log in "
            f"{settings.db}"
        )
    found = _backend(scheme)
    if found is None:
        known = ", ".join(backends()) or "none is installed"
        raise StoreError(
            f"no event log backend for {scheme}:// ({SETTING}={mask_url(url)}); known "
            f"schemes: {known}. Leave {SETTING} unset for the SQLite log in {settings.db}"
        )
    return found


async def open_event_log(settings: Settings) -> EventLog:
    """The event log ``settings`` name, open (see the module docstring)."""
    url = settings.event_log
    if not url:
        return await SqliteEventLog.open(settings.db, inline=True)
    return await _backend_for(settings, url).open_log(url, settings)


def open_log_source(settings: Settings) -> LogSource | None:
    """Where the projector reads the log: ``None`` for the SQLite log in the views' file."""
    url = settings.event_log
    if not url:
        return None
    source = _backend_for(settings, url).open_source
    if source is None:
        raise StoreError(
            f"the event log backend for {mask_url(url)} gives the consumer a log but the "
            "projector no way to read it (no source): the views cannot follow it"
        )
    return source(url, settings)
