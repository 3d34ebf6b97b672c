"""What the API returns: msgspec Structs, encoded by Litestar as they are.

Metadata values are in the documented JSON form (``metastream.schemas.jsonform``):
plain JSON where JSON says what the value is, ``{"$type": ..., "value": ...}``
where it does not. Times are ISO 8601 in UTC; ids are UUIDs in text.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """An error: the HTTP status and what went wrong."""

    status: int
    message: str
    candidates: list[str] | None = None
    """For an ambiguous reference: what it could mean."""


class AsOf(msgspec.Struct, frozen=True):
    """The point an entity was read at (absent: the latest committed state)."""

    position: int | None
    time: datetime.datetime | None


class RunSummary(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    pipeline_name: str | None
    status: str | None
    created: datetime.datetime | None
    finished: datetime.datetime | None
    error: str | None
    position: int
    """The log position of the event that registered the run."""
    metrics: dict[str, Any]
    """Up to 20 numeric keys: the run's own first, then ``step::key`` rollups, by name."""


class RunList(msgspec.Struct, frozen=True):
    runs: list[RunSummary]
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; ``null`` on the last page."""


class Member(msgspec.Struct, frozen=True):
    """A step, artifact version or model version registered under a run."""

    id: uuid.UUID
    kind: str
    name: str
    version: str | None
    status: str | None
    created: datetime.datetime | None


class Step(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    run_id: uuid.UUID
    status: str | None
    created: datetime.datetime | None
    finished: datetime.datetime | None
    error: str | None
    metadata: dict[str, Any]
    as_of: AsOf | None = None


class Run(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    pipeline_name: str | None
    status: str | None
    created: datetime.datetime | None
    finished: datetime.datetime | None
    error: str | None
    metadata: dict[str, Any]
    """The run's own keys, then ``step::key`` for each step's keys (unless ``rollups=false``)."""
    steps: list[Step]
    artifacts: list[Member]
    models: list[Member]
    as_of: AsOf | None = None


class ArtifactVersion(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    version: str
    run_id: uuid.UUID | None
    step_id: uuid.UUID | None
    uri: str | None
    created: datetime.datetime | None
    metadata: dict[str, Any]
    as_of: AsOf | None = None


class ModelVersion(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    version: str
    run_id: uuid.UUID | None
    created: datetime.datetime | None
    metadata: dict[str, Any]
    as_of: AsOf | None = None


class HistoryEntry(msgspec.Struct, frozen=True):
    position: int
    event_id: uuid.UUID
    logged_at: datetime.datetime
    value: Any
    component: str | None


class History(msgspec.Struct, frozen=True):
    entity: uuid.UUID
    kind: str
    key: str
    entries: list[HistoryEntry]


class ComparedKey(msgspec.Struct, frozen=True):
    key: str
    values: list[Any]
    """Each run's value (``null`` where ``present`` is false)."""
    present: list[bool]
    differs: list[bool]
    """Whether the value (or its absence) differs from the baseline run's."""
    numeric: bool


class Comparison(msgspec.Struct, frozen=True):
    runs: list[RunSummary]
    baseline: uuid.UUID
    keys: list[ComparedKey]


class LoggedEvent(msgspec.Struct, frozen=True):
    """One event of the log; ``data`` holds its fields (metadata values in JSON form)."""

    position: int
    event_id: uuid.UUID
    type: str
    ts: float
    data: dict[str, Any]


class EventPage(msgspec.Struct, frozen=True):
    events: list[LoggedEvent]
    next_after: int
    """Pass it as ``after`` for the next page."""
    head: int
    """The last position in the log."""
    applied_through: int
    """The position up to which the views have applied the log."""


class Status(msgspec.Struct, frozen=True):
    head: int | None
    """The log's last position; ``None`` when the log is in another storage (LogElsewhere)."""
    applied_through: int
