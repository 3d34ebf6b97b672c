"""Encoding events to bytes and back: msgpack, one module-level codec.

``encode_event``/``decode_event`` give events with their metadata values as
Python objects of the exact logged types. The projections use
``decode_stored``, which leaves each metadata value as its raw msgpack bytes
(``msgspec.Raw``) so that values are stored without a decode/encode round
trip.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec

from metastream.schemas.events import (
    AnyEvent,
    ArtifactVersionRegistered,
    Event,
    ModelVersionRegistered,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from metastream.schemas.refs import Target
from metastream.schemas.values import ENCODER, _ext_hook

DecodeError = msgspec.DecodeError  # a ValueError


class RawMetadataLogged(Event, frozen=True, kw_only=True, tag="MetadataLogged"):
    """``MetadataLogged`` as the projections read it: values left encoded."""

    target: Target
    metadata: dict[str, msgspec.Raw]
    component: str | None = None


StoredEvent: TypeAlias = (
    RawMetadataLogged
    | RunStarted
    | RunFinished
    | StepStarted
    | StepFinished
    | ArtifactVersionRegistered
    | ModelVersionRegistered
)

_EVENT_DECODER: Final[msgspec.msgpack.Decoder[AnyEvent]] = msgspec.msgpack.Decoder(
    AnyEvent, ext_hook=_ext_hook
)
_STORED_DECODER: Final[msgspec.msgpack.Decoder[StoredEvent]] = msgspec.msgpack.Decoder(StoredEvent)
_encode = ENCODER.encode


def encode_event(event: Event) -> bytes:
    """The msgpack bytes of ``event`` (metadata must come from ``prepare_metadata``)."""
    return _encode(event)


def decode_event(data: bytes | memoryview) -> AnyEvent:
    """An event with its metadata values decoded to the logged types.

    Raises ``DecodeError`` (a ``ValueError``) for bytes that are not an event.
    """
    return _EVENT_DECODER.decode(data)


def decode_stored(data: bytes | memoryview) -> StoredEvent:
    """An event with each metadata value left as raw msgpack bytes."""
    return _STORED_DECODER.decode(data)
