"""Publishing events from pipeline code, and the handle ``log_metadata`` returns."""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from metastream import producer
from metastream.config import Settings
from metastream.schemas import (
    Event,
    MetadataLogged,
    Target,
    check_sizes,
    encode_event,
    new_id,
)

log = logging.getLogger("metastream")


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings, read once per process (``settings.cache_clear()`` re-reads them)."""
    return Settings.from_env()


def publish(event: Event) -> bytes:
    """Hand ``event`` to the process's producer (never blocks); returns its id."""
    producer.get_producer().publish(encode_event(event))
    return event.event_id


def check_size(metadata: dict[str, Any], encoded_size: int) -> None:
    """Raise ``ValueError`` naming a value over the size limit.

    ``encoded_size`` is the size of something holding every value: when it is
    within the limit, so is each value, and nothing more is encoded.
    """
    limit = settings().max_value_bytes
    if encoded_size > limit:
        check_sizes(metadata, limit)


def publish_metadata(
    target: Target,
    metadata: dict[str, Any],
    *,
    component: str | None = None,
    event_id: bytes | None = None,
) -> bytes:
    """Publish prepared ``metadata`` for ``target``; returns the event's id.

    Every metadata event goes through here: ``log_metadata``, stack
    components, and artifact metadata held until the step's outputs exist.
    Raises ``ValueError`` (and publishes nothing) for a value over the limit.
    """
    event = MetadataLogged(
        event_id=event_id or new_id(),
        ts=time.time(),
        target=target,
        metadata=metadata,
        component=component,
    )
    body = encode_event(event)
    check_size(metadata, len(body))
    producer.get_producer().publish(body)
    return event.event_id


@dataclass
class Deferred:
    """Metadata held back until its artifact exists (``infer_artifact=True``)."""

    published: threading.Event = field(default_factory=threading.Event)
    discarded: str | None = None

    def discard(self, reason: str) -> None:
        self.discarded = reason
        self.published.set()


class LogHandle:
    """What ``log_metadata`` published: pass it to ``Client().wait_for`` to read your writes.

    A plain class with slots, and the target described only when asked: this
    is made on every call, and a frozen dataclass plus formatting a UUID cost
    more than publishing.
    """

    __slots__ = ("_target", "deferred", "event_ids")

    def __init__(
        self, event_ids: tuple[bytes, ...], target: Target | str, deferred: Deferred | None = None
    ) -> None:
        self.event_ids = event_ids
        self._target = target
        self.deferred = deferred

    @property
    def target(self) -> str:
        """What the metadata was logged for, in words."""
        target = self._target
        return target if isinstance(target, str) else target.describe()

    def __bool__(self) -> bool:
        return bool(self.event_ids)

    def __repr__(self) -> str:
        ids = ", ".join(str(uuid.UUID(bytes=i)) for i in self.event_ids)
        return f"LogHandle({self.target}: {ids})"
