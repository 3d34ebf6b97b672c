"""Publishing events from pipeline code, and the handle ``log_metadata`` returns."""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from contextvars import ContextVar
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
from metastream.schemas.values import unencodable

log = logging.getLogger("metastream")


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings, read once per process (``settings.cache_clear()`` re-reads them)."""
    return Settings.from_env()


def publish(event: Event) -> bytes:
    """Hand ``event`` to the process's producer (never blocks); returns its id."""
    producer.get_producer().publish(encode_event(event))
    _remember(event.event_id)
    return event.event_id


published_ids: ContextVar[list[bytes] | None] = ContextVar("published_ids", default=None)
"""Where the running pipeline run collects the ids of its events, for ``run.wait()``."""


def _remember(event_id: bytes) -> None:
    ids = published_ids.get()
    if ids is not None:
        ids.append(event_id)


def check_size(metadata: dict[str, Any], encoded_size: int, target: Target | str) -> None:
    """Raise ``ValueError`` for a value or a whole event over its size limit.

    ``encoded_size`` is the size of the encoded event (or of something holding
    every value): when it is within the value limit, so is each value, and
    nothing more is encoded. A value over its limit is named first; an event
    over its limit says how many keys and bytes it has.
    """
    config = settings()
    if encoded_size > config.max_value_bytes:
        check_sizes(metadata, config.max_value_bytes)
    if encoded_size > config.max_event_bytes:
        where = target if isinstance(target, str) else target.describe()
        raise ValueError(
            f"metadata for {where}: {len(metadata):,} keys make an event of "
            f"{encoded_size:,} bytes encoded; the limit is {config.max_event_bytes:,} bytes "
            "(set METASTREAM_MAX_EVENT_BYTES to change it); log the metadata in several calls"
        )


def encode_metadata_event(event: MetadataLogged) -> bytes:
    """``event`` encoded; a str UTF-8 cannot encode raises ``ValueError`` naming its key."""
    try:
        return encode_event(event)
    except UnicodeEncodeError as exc:
        raise unencodable(event.metadata, exc) from None


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
    Raises ``ValueError`` (and publishes nothing) for a value or an event
    over its size limit, or a str that UTF-8 cannot encode.
    """
    event = MetadataLogged(
        event_id=event_id or new_id(),
        ts=time.time(),
        target=target,
        metadata=metadata,
        component=component,
    )
    body = encode_metadata_event(event)
    check_size(metadata, len(body), target)
    producer.get_producer().publish(body)
    _remember(event.event_id)
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
