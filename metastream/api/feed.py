"""The event log as JSON: a page of events after a position (the catch-up feed)."""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec

from metastream.api import models
from metastream.api.readers import MAX_POSITION
from metastream.query import Reader
from metastream.schemas import RawMetadataLogged, decode_stored, decode_value
from metastream.schemas.jsonform import json_form

MAX_EVENTS: Final = 1000


def _data(event: Any) -> dict[str, Any]:
    if isinstance(event, RawMetadataLogged):
        return {
            "target": msgspec.to_builtins(event.target),
            "metadata": {k: json_form(decode_value(v)) for k, v in event.metadata.items()},
            "component": event.component,
        }
    data: dict[str, Any] = msgspec.to_builtins(event)
    for field in ("type", "event_id", "ts"):
        data.pop(field, None)
    return data


def events_after(reader: Reader, after: int, limit: int) -> models.EventPage:
    """Up to ``limit`` events after position ``after``, oldest first.

    Only events the views have applied: a client that reads one can then read
    what it changed.
    """
    if not 0 <= after <= MAX_POSITION:
        raise ValueError(f"after must be a log position (0 or more), not {after}")
    if not 1 <= limit <= MAX_EVENTS:
        raise ValueError(f"limit must be between 1 and {MAX_EVENTS}, not {limit}")
    applied = reader.applied_through()
    out = []
    for position, body in reader.bodies(after, limit):
        if position > applied:
            break
        event = decode_stored(body)
        out.append(
            models.LoggedEvent(
                position=position,
                event_id=uuid.UUID(bytes=event.event_id),
                type=type(event).__name__.removeprefix("Raw"),
                ts=event.ts,
                data=_data(event),
            )
        )
    return models.EventPage(
        events=out,
        next_after=out[-1].position if out else after,
        head=reader.head(),
        applied_through=applied,
    )
