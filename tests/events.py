"""Building events for tests, with little ceremony."""

from __future__ import annotations

import uuid
from typing import Any

from metastream.eventlog import Incoming
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    EntityKind,
    Event,
    MetadataLogged,
    ModelVersionRegistered,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    Target,
    decode_stored,
    encode_event,
    new_id,
    prepare_metadata,
)


def incoming(*events: Event) -> list[Incoming]:
    out = []
    for event in events:
        body = encode_event(event)
        out.append(Incoming(decode_stored(body), body))
    return out


def logged(target: Target, component: str | None = None, **metadata: Any) -> MetadataLogged:
    return MetadataLogged(target=target, metadata=prepare_metadata(metadata), component=component)


def by_id(kind: EntityKind, entity_id: uuid.UUID) -> ById:
    return ById(kind=kind, id=entity_id)


class Pipeline:
    """Ids and events for one run with named steps, an artifact and a model."""

    def __init__(self, name: str = "run-1", pipeline: str = "training") -> None:
        self.name = name
        self.pipeline = pipeline
        self.run_id = uuid.UUID(bytes=new_id())
        self.step_ids: dict[str, uuid.UUID] = {}

    def started(self) -> RunStarted:
        return RunStarted(run_id=self.run_id, name=self.name, pipeline_name=self.pipeline)

    def finished(self, status: str = "completed") -> RunFinished:
        return RunFinished(run_id=self.run_id, status=status)  # type: ignore[arg-type]

    def step(self, name: str) -> StepStarted:
        self.step_ids[name] = uuid.UUID(bytes=new_id())
        return StepStarted(step_id=self.step_ids[name], run_id=self.run_id, name=name)

    def step_done(
        self, name: str, status: str = "completed", error: str | None = None
    ) -> StepFinished:
        return StepFinished(step_id=self.step_ids[name], status=status, error=error)  # type: ignore[arg-type]

    def on_run(self, **metadata: Any) -> MetadataLogged:
        return logged(by_id("pipeline_run", self.run_id), **metadata)

    def on_step(self, name: str, **metadata: Any) -> MetadataLogged:
        return logged(by_id("step_run", self.step_ids[name]), **metadata)


def artifact(
    name: str, version: str | None = None, run: Pipeline | None = None
) -> ArtifactVersionRegistered:
    return ArtifactVersionRegistered(
        artifact_version_id=uuid.UUID(bytes=new_id()),
        name=name,
        version=version,
        run_id=run.run_id if run else None,
    )


def model(name: str, version: str | None = None) -> ModelVersionRegistered:
    return ModelVersionRegistered(
        model_version_id=uuid.UUID(bytes=new_id()), name=name, version=version
    )
