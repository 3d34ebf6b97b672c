"""Calling the subscriber's handler, and the dead letters of what it keeps failing on.

The handler is ``handler(event)``, a coroutine function or a plain function.
Delivery is at least once: after a crash, what was delivered but not yet
acknowledged is delivered again, so a handler with side effects deduplicates
by ``event.id`` (the producer's event id, the same on every delivery).

A handler that raises leaves the event unacknowledged; it is tried again
(the live part: when the entry has been idle ``retry_after`` seconds; the
catch-up: at once, after a short pause) and after ``max_deliveries`` tries
it goes to the subscription's dead-letter stream with the handler's last
exception as the reason; the events behind it are not held back.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

import redis.asyncio as aredis

from metastream.schemas import AnyEvent

log = logging.getLogger("metastream.subscriptions")

Handler: TypeAlias = Callable[[AnyEvent], Awaitable[None] | None]

MAX_REASON: Final = 2000
"""Characters of the exception text kept in a dead letter."""


def reason_of(exc: BaseException) -> str:
    """What a dead letter says about ``exc``: its type and message."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"


class Deliverer:
    """Calls the handler; writes dead letters."""

    def __init__(
        self,
        handler: Handler,
        client: aredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        dead_letters: str,
    ) -> None:
        self.handler = handler
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004  (an object with an async __call__)
        )
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.delivered = 0
        self.failed = 0
        self.dead_lettered = 0

    async def call(self, event: AnyEvent) -> str | None:
        """Hand ``event`` to the handler: ``None`` if it returned, else why it failed."""
        try:
            if self._is_async:
                await self.handler(event)  # type: ignore[misc]
            else:
                result: Any = self.handler(event)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            self.failed += 1
            log.warning("the handler of %s failed on event %s: %s", self.group, event.id, exc)
            return reason_of(exc)
        self.delivered += 1
        return None

    def dead_letter_fields(
        self, reason: str, data: bytes, *, deliveries: int, position: int
    ) -> dict[str, bytes | str]:
        """The dead letter of an event the catch-up read from the log at ``position``.

        The fields of the consumer's dead letters (``consumer/dead_letters.py``,
        which the live part writes for a stream entry) with ``position`` in place
        of the entry's ``id``.
        """
        return {
            "reason": reason,
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "deliveries": str(deliveries),
            "position": str(position),
            "data": data,
        }

    async def dead_letter(
        self, reason: str, data: bytes, *, deliveries: int, position: int
    ) -> None:
        """Write a dead letter (catch-up: there is no entry to acknowledge with it)."""
        fields = self.dead_letter_fields(reason, data, deliveries=deliveries, position=position)
        await self.client.xadd(self.dead_letters, fields)  # type: ignore[arg-type]
        self.dead_lettered += 1
        log.error("dead-lettered an event of %s in %s: %s", self.group, self.dead_letters, reason)
