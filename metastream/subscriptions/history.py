"""The event log as a subscriber reads it for its catch-up: the HTTP events feed, or the file.

Both give pages (lists) of :class:`LogItem` in position order. A page holds what the
filters need (:class:`~metastream.subscriptions.filters.Peek`) and decodes
the event only when asked (``LogItem.event()``):

* :class:`FeedHistory`: ``GET /api/v1/events?after=N&limit=M`` of ``metastream
  ui`` (the service needs no database file). The feed serves only what the
  views have applied; a page may therefore end before the log's head, and the
  catch-up waits for the rest. Metadata values come in metastream's JSON
  form, which :func:`~metastream.schemas.jsonform.from_json_form` turns back
  into values of their exact logged types.
* :class:`FileHistory`: the SQLite database itself (read-only), the events'
  msgpack bytes as the consumer stored them.
"""

from __future__ import annotations

import abc
import asyncio
import os
from pathlib import Path
from typing import Any, Final, NamedTuple

import httpx
import msgspec

from metastream.api.models import EventPage, Status
from metastream.errors import LogElsewhere
from metastream.schemas import AnyEvent, decode_event, encode_event
from metastream.schemas.jsonform import from_json_form
from metastream.subscriptions.filters import Peek, peek, peek_builtins

PAGE: Final = 1000
"""Events per page (the feed's largest page)."""


class LogItem(NamedTuple):
    """One event of the log, peeked at, not yet decoded."""

    position: int
    peek: Peek
    body: bytes | None = None
    """The msgpack bytes (from the file)."""
    data: dict[str, Any] | None = None
    """The feed's ``data`` (from HTTP), with ``ts``."""

    @property
    def event_id(self) -> bytes:
        return self.peek.event_id

    def event(self) -> AnyEvent:
        """The event, with its metadata values of their logged types."""
        if self.body is not None:
            return decode_event(self.body)
        assert self.data is not None
        data = dict(self.data)
        if data.get("metadata") is not None:
            data["metadata"] = {k: from_json_form(v) for k, v in data["metadata"].items()}
        event: AnyEvent = msgspec.convert(
            {**data, "type": self.peek.type, "event_id": self.peek.event_id}, AnyEvent
        )
        return event

    def encoded(self) -> bytes:
        """The msgpack bytes (for a dead letter); the feed's JSON if it cannot be decoded."""
        if self.body is not None:
            return self.body
        try:
            return encode_event(self.event())
        except (ValueError, TypeError):
            return msgspec.json.encode(self.data)


class History(abc.ABC):
    """Where the catch-up reads the log."""

    @abc.abstractmethod
    async def head(self) -> int:
        """The position of the last event committed to the log."""

    @abc.abstractmethod
    async def page(self, after: int, limit: int = PAGE) -> list[LogItem]:
        """Events after position ``after``, oldest first."""

    async def close(self) -> None:  # noqa: B027  (optional)
        """Release what the source holds."""


_PAGE_DECODER: Final = msgspec.json.Decoder(EventPage)
_STATUS_DECODER: Final = msgspec.json.Decoder(Status)


class FeedHistory(History):
    """The HTTP events feed of ``metastream ui`` at ``url`` (token: ``$METASTREAM_UI_TOKEN``)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        token = token if token is not None else os.environ.get("METASTREAM_UI_TOKEN")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def _get(self, path: str, params: dict[str, int] | None = None) -> bytes:
        response = await self._http.get(path, params=params)
        if response.status_code != 200:
            raise ConnectionError(
                f"the events feed at {self.url} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        return response.content

    async def head(self) -> int:
        head = _STATUS_DECODER.decode(await self._get("/api/v1/status")).head
        if head is None:  # its log is in another storage: the feed cannot serve it
            raise LogElsewhere(f"the events feed at {self.url} has no event log to serve")
        return head

    async def page(self, after: int, limit: int = PAGE) -> list[LogItem]:
        page = _PAGE_DECODER.decode(
            await self._get("/api/v1/events", {"after": after, "limit": limit})
        )
        return [
            LogItem(
                e.position,
                peek_builtins(e.type, e.event_id.bytes, e.data),
                data={**e.data, "ts": e.ts},
            )
            for e in page.events
        ]

    async def close(self) -> None:
        await self._http.aclose()


class FileHistory(History):
    """The event log in the SQLite database at ``path`` (read-only)."""

    def __init__(self, path: str | Path) -> None:
        from metastream.query import Reader

        self._reader = Reader(path)

    async def head(self) -> int:
        return await asyncio.to_thread(self._reader.head)

    async def page(self, after: int, limit: int = PAGE) -> list[LogItem]:
        rows = await asyncio.to_thread(self._reader.bodies, after, limit)
        return [LogItem(position, peek(bytes(body)), body=bytes(body)) for position, body in rows]

    async def close(self) -> None:
        self._reader.close()


def open_history(where: str | Path, token: str | None = None) -> History:
    """A feed for an ``http(s)://`` URL, else the database file at ``where``.

    Nothing is opened until the history is first read: a group that has no
    catch-up to do never touches it.
    """
    return LazyHistory(where, token)


class LazyHistory(History):
    """:class:`FeedHistory` or :class:`FileHistory`, opened on first use."""

    def __init__(self, where: str | Path, token: str | None = None) -> None:
        self.where = str(where)
        self.token = token
        self._opened: History | None = None

    def _history(self) -> History:
        if self._opened is None:
            if self.where.startswith(("http://", "https://")):
                self._opened = FeedHistory(self.where, self.token)
            else:
                self._opened = FileHistory(Path(self.where).expanduser())
        return self._opened

    async def head(self) -> int:
        return await self._history().head()

    async def page(self, after: int, limit: int = PAGE) -> list[LogItem]:
        return await self._history().page(after, limit)

    async def close(self) -> None:
        if self._opened is not None:
            await self._opened.close()
