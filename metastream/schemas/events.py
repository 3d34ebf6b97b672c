"""The events: immutable facts, one type per fact, a tagged msgspec union.

Schema evolution rules (msgspec's): a new field always has a default; never
change a field's type; never rename an event class (its name is the wire
tag). Decoders ignore fields they do not know, so an older consumer reads
events from a newer producer and the other way round.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, TypeAlias

import msgspec

from metastream.schemas.ids import id_time, new_id
from metastream.schemas.refs import Target

RunStatus: TypeAlias = Literal["running", "completed", "failed"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="type", gc=False):
    """Fields every event has.

    ``event_id`` is a time-ordered 128-bit id (16 bytes, UUIDv7 layout) made
    by the producer, so a retried publish is recognised as the same event.
    ``ts`` is the producer's wall-clock time in Unix seconds.
    """

    event_id: bytes = msgspec.field(default_factory=new_id)
    ts: float = msgspec.field(default_factory=time.time)

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.event_id)

    @property
    def id_time(self) -> float:
        return id_time(self.event_id)


class MetadataLogged(Event, frozen=True, kw_only=True):
    """``metadata`` was logged for ``target``.

    ``component`` names the stack component that produced the metadata, when
    one did.
    """

    target: Target
    metadata: dict[str, Any]
    component: str | None = None


class RunStarted(Event, frozen=True, kw_only=True):
    run_id: uuid.UUID
    name: str
    pipeline_name: str


class RunFinished(Event, frozen=True, kw_only=True):
    run_id: uuid.UUID
    status: RunStatus
    error: str | None = None


class StepStarted(Event, frozen=True, kw_only=True):
    step_id: uuid.UUID
    run_id: uuid.UUID
    name: str


class StepFinished(Event, frozen=True, kw_only=True):
    step_id: uuid.UUID
    status: RunStatus
    error: str | None = None


class ArtifactVersionRegistered(Event, frozen=True, kw_only=True):
    """A new version of artifact ``name``.

    ``version`` is ``None`` for the next number ("1", "2", ...), given by the
    registry in log order.
    """

    artifact_version_id: uuid.UUID
    name: str
    version: str | None = None
    run_id: uuid.UUID | None = None
    step_id: uuid.UUID | None = None
    uri: str | None = None


class ModelVersionRegistered(Event, frozen=True, kw_only=True):
    """Model ``name`` version ``version`` is used by a run.

    A named version has a deterministic id (``model_version_id_for``), so
    every producer that names it agrees on the id and registering it again is
    a no-op. ``version`` ``None`` means a new numbered version.
    """

    model_version_id: uuid.UUID
    name: str
    version: str | None = None
    run_id: uuid.UUID | None = None


AnyEvent: TypeAlias = (
    MetadataLogged
    | RunStarted
    | RunFinished
    | StepStarted
    | StepFinished
    | ArtifactVersionRegistered
    | ModelVersionRegistered
)
EVENT_TYPES: tuple[type[Event], ...] = (
    MetadataLogged,
    RunStarted,
    RunFinished,
    StepStarted,
    StepFinished,
    ArtifactVersionRegistered,
    ModelVersionRegistered,
)

_MODEL_NAMESPACE = uuid.UUID("6f1d3a52-4b8e-4c3e-9a57-2f0c7d1e5b90")


def model_version_id_for(name: str, version: str) -> uuid.UUID:
    """The id every producer gives model ``name`` version ``version``."""
    return uuid.uuid5(_MODEL_NAMESPACE, f"{name}\x00{version}")
