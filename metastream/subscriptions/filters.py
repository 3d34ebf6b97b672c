"""Which events a subscriber wants: by event type, pipeline, entity kind and key.

A filter is checked on a *peek* at the event: one msgspec pass that reads the
``type`` tag, the target and the metadata keys but leaves every metadata
value encoded (``msgspec.Raw``), so an event the subscriber does not want is
never decoded into Python values. Only events that pass are decoded.

Dimensions combine with AND, the values given for one dimension with OR; a
dimension left empty matches everything. A key filter matches
``MetadataLogged`` events that log at least one of the keys (the whole event
is delivered).

The pipeline of an event is known from the run it is about. Runs, steps and
artifact versions name their run in their own events (``RunStarted`` carries
the pipeline's name; ``StepStarted`` and ``ArtifactVersionRegistered`` the
run's id), so the subscriber learns ``run -> pipeline`` from every event it
reads, filtered out or not, and keeps what it learned in Redis
(:class:`~metastream.subscriptions.knowledge.RunKnowledge`). An event about a
run the subscriber never saw start (it subscribed ``from_="now"`` after the
run began), about a run given by an id *prefix*, or about a model version
(used by several runs) has no known pipeline and does not match a pipeline
filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from metastream.schemas import ENTITY_KINDS, EVENT_TYPES, EntityKind, Target
from metastream.schemas.refs import ArtifactByName, ById, ModelByName, RunByName, StepByName

TYPE_NAMES: Final = frozenset(t.__name__ for t in EVENT_TYPES)

_KIND_OF_TYPE: Final[dict[str, EntityKind]] = {
    "RunStarted": "pipeline_run",
    "RunFinished": "pipeline_run",
    "StepStarted": "step_run",
    "StepFinished": "step_run",
    "ArtifactVersionRegistered": "artifact_version",
    "ModelVersionRegistered": "model_version",
}
_KIND_OF_TARGET: Final[dict[type, EntityKind]] = {
    RunByName: "pipeline_run",
    StepByName: "step_run",
    ArtifactByName: "artifact_version",
    ModelByName: "model_version",
}


class Peek(msgspec.Struct, frozen=True, gc=False):
    """What the filters read of an event, without decoding its metadata values.

    Every event type decodes into it (fields it lacks stay ``None``).
    """

    type: str
    event_id: bytes = b""
    target: Target | None = None
    metadata: dict[str, msgspec.Raw] | None = None
    run_id: uuid.UUID | None = None
    step_id: uuid.UUID | None = None
    artifact_version_id: uuid.UUID | None = None
    name: str | None = None
    pipeline_name: str | None = None

    @property
    def kind(self) -> EntityKind | None:
        """The kind of entity the event is about."""
        if self.target is None:
            return _KIND_OF_TYPE.get(self.type)
        if isinstance(self.target, ById):
            return self.target.kind
        return _KIND_OF_TARGET[type(self.target)]


_PEEK_DECODER: Final = msgspec.msgpack.Decoder(Peek)


def peek(body: bytes) -> Peek:
    """Read ``body``'s type, ids, target and metadata keys (values left encoded).

    Raises ``msgspec.DecodeError`` (a ``ValueError``) for bytes that are not an event.
    """
    return _PEEK_DECODER.decode(body)


def peek_builtins(event_type: str, event_id: bytes, data: dict[str, Any]) -> Peek:
    """A :class:`Peek` of an event given as JSON builtins (the HTTP feed's ``data``)."""
    fields = {k: data[k] for k in _ID_FIELDS if data.get(k) is not None}
    peeked = msgspec.convert({"type": event_type, **fields, "target": data.get("target")}, Peek)
    metadata = data.get("metadata")
    # the keys only: the values are never looked at
    return msgspec.structs.replace(
        peeked, event_id=event_id, metadata=dict.fromkeys(metadata, _NIL) if metadata else None
    )


_ID_FIELDS: Final = ("run_id", "step_id", "artifact_version_id", "name", "pipeline_name")

_NIL: Final = msgspec.Raw(b"\xc0")


def _frozen(values: str | Iterable[str] | None) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        return frozenset((values,))
    return frozenset(values)


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """The events to deliver: each argument a name or a collection of names (OR).

    ``types``: event type names (``"MetadataLogged"``, ``"RunStarted"``, ...);
    ``pipelines``: pipeline names; ``kinds``: ``pipeline_run``, ``step_run``,
    ``artifact_version``, ``model_version``; ``keys``: metadata keys.
    """

    types: frozenset[str] = frozenset()
    pipelines: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        types: str | Iterable[str] | None = None,
        pipelines: str | Iterable[str] | None = None,
        kinds: str | Iterable[str] | None = None,
        keys: str | Iterable[str] | None = None,
    ) -> EventFilter:
        """A filter from names; unknown type or kind names raise ``ValueError``."""
        made = cls(
            types=_frozen(types),
            pipelines=_frozen(pipelines),
            kinds=_frozen(kinds),
            keys=_frozen(keys),
        )
        if unknown := made.types - TYPE_NAMES:
            raise ValueError(
                f"unknown event type {', '.join(sorted(unknown))}: "
                f"one of {', '.join(sorted(TYPE_NAMES))}"
            )
        if unknown := made.kinds - set(ENTITY_KINDS):
            raise ValueError(
                f"unknown entity kind {', '.join(sorted(unknown))}: "
                f"one of {', '.join(ENTITY_KINDS)}"
            )
        return made

    @property
    def needs_pipelines(self) -> bool:
        """Whether matching needs to know which pipeline a run belongs to."""
        return bool(self.pipelines)

    def matches(self, event: Peek, pipeline: str | None = None) -> bool:
        """Whether to deliver ``event``; ``pipeline``: the pipeline it belongs to, if known."""
        if self.types and event.type not in self.types:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if self.keys and not (event.metadata and not self.keys.isdisjoint(event.metadata)):
            return False
        return not self.pipelines or pipeline in self.pipelines


EVERYTHING: Final = EventFilter()
