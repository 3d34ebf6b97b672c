"""Entities as the API and the pages show them, read through ``metastream.query``.

Each function returns an API model whose metadata holds the Python values
(a ``Uri`` is still a ``Uri``): the pages render those, and the API turns
them into the JSON form with :func:`json_metadata`.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import msgspec

from metastream.api import models
from metastream.api.readers import as_of_seconds
from metastream.errors import ReferenceNotFound
from metastream.query import Reader, browse
from metastream.query.compare import MAX_COMPARED, compare
from metastream.query.views import StepView
from metastream.schemas import as_uuid
from metastream.schemas.jsonform import json_form, metadata_json_form

S = TypeVar("S", bound=msgspec.Struct)


def _member(m: browse.Member) -> models.Member:
    return models.Member(m.id, m.kind, m.name, m.version, m.status, m.created)


def _step_model(view: StepView, metadata: dict[str, Any]) -> models.Step:
    return models.Step(
        id=view.id,
        name=view.name,
        run_id=view.run_id,
        status=view.status,
        created=view.created,
        finished=view.finished,
        error=view.error,
        metadata=metadata,
    )


def _not_yet(reader: Reader, entity: bytes, as_of: models.AsOf | None, what: str) -> None:
    if as_of is None:
        return
    found = browse.registration(reader, entity)
    if found is None:
        return
    at, created = found.position, found.created
    cut = browse.cut_time(reader, as_of.position, as_of_seconds(as_of))
    if (as_of.position is not None and at is not None and at > as_of.position) or (
        cut is not None and created is not None and created > cut
    ):
        raise ReferenceNotFound(f"{what} was not registered yet as of {_describe(as_of)}")


def _describe(as_of: models.AsOf) -> str:
    return f"position {as_of.position}" if as_of.position is not None else str(as_of.time)


def _status_as_of(
    reader: Reader, as_of: models.AsOf | None, status: str | None, finished: Any, error: Any
) -> tuple[str | None, Any, Any]:
    if as_of is None or finished is None:
        return status, finished, error
    cut = browse.cut_time(reader, as_of.position, as_of_seconds(as_of))
    if cut is not None and finished.timestamp() > cut:
        return "running", None, None
    return status, finished, error


def run(
    reader: Reader, ref: str, *, as_of: models.AsOf | None = None, rollups: bool = True
) -> models.Run:
    """A run by id, name or unique prefix, with steps, artifacts and models."""
    run_id = browse.run_ref(reader, ref)
    _not_yet(reader, run_id, as_of, f"pipeline run {ref!r}")
    position, time = (None, None) if as_of is None else (as_of.position, as_of_seconds(as_of))
    view = reader.run_by_id(run_id, rollups=False)
    steps = []
    step_members = {
        m.id: m for m in browse.members(reader, run_id, "step_run", position=position, time=time)
    }
    if as_of is None:
        metadata = dict(view.run_metadata)
        for step in view.steps.values():
            steps.append(_step_model(step, step.run_metadata))
    else:
        metadata = reader.as_of(run_id, position=position, time=time)
        for step in view.steps.values():
            member = step_members.get(step.id)
            if member is None:
                continue
            step_metadata = reader.as_of(step.id.bytes, position=position, time=time)
            steps.append(
                msgspec.structs.replace(
                    _step_model(step, step_metadata),
                    status=member.status,
                    finished=member.finished,
                    error=member.error,
                )
            )
    if rollups:
        for step_model in steps:
            for key, value in step_model.metadata.items():
                metadata[f"{step_model.name}::{key}"] = value
    status, finished, error = _status_as_of(reader, as_of, view.status, view.finished, view.error)
    return models.Run(
        id=view.id,
        name=view.name,
        pipeline_name=view.pipeline_name,
        status=status,
        created=view.created,
        finished=finished,
        error=error,
        metadata=metadata,
        steps=steps,
        artifacts=[
            _member(m)
            for m in browse.members(
                reader, run_id, "artifact_version", position=position, time=time
            )
        ],
        models=[
            _member(m)
            for m in browse.members(reader, run_id, "model_version", position=position, time=time)
        ],
        as_of=as_of,
    )


def _metadata(reader: Reader, entity: bytes, as_of: models.AsOf | None) -> dict[str, Any]:
    if as_of is None:
        return reader.metadata(entity)
    return reader.as_of(entity, position=as_of.position, time=as_of_seconds(as_of))


def step(
    reader: Reader, step_ref: str, run_ref: str | None = None, *, as_of: models.AsOf | None = None
) -> models.Step:
    """A step run by id, or by name within a run."""
    step_id = reader.step_id(step_ref, run_ref)
    _not_yet(reader, step_id, as_of, f"step {step_ref!r}")
    view = reader.step(uuid.UUID(bytes=step_id))
    status, finished, error = _status_as_of(reader, as_of, view.status, view.finished, view.error)
    return msgspec.structs.replace(
        _step_model(view, _metadata(reader, step_id, as_of)),
        status=status,
        finished=finished,
        error=error,
        as_of=as_of,
    )


def artifact_version(
    reader: Reader, ref: str, version: str | None = None, *, as_of: models.AsOf | None = None
) -> models.ArtifactVersion:
    """An artifact version by name and version (the latest when none), or by id."""
    entity = reader.artifact_version_id(ref, version)
    _not_yet(reader, entity, as_of, f"artifact version {ref!r}")
    view = reader.artifact_version(uuid.UUID(bytes=entity))
    return models.ArtifactVersion(
        id=view.id,
        name=view.name,
        version=view.version,
        run_id=view.run_id,
        step_id=view.step_id,
        uri=view.uri,
        created=view.created,
        metadata=_metadata(reader, entity, as_of),
        as_of=as_of,
    )


def model_version(
    reader: Reader, ref: str, version: str | None = None, *, as_of: models.AsOf | None = None
) -> models.ModelVersion:
    """A model version by name and version (the latest when none), or by id."""
    entity = reader.model_version_id(ref, version)
    _not_yet(reader, entity, as_of, f"model version {ref!r}")
    view = reader.model_version(uuid.UUID(bytes=entity))
    return models.ModelVersion(
        id=view.id,
        name=view.name,
        version=view.version,
        run_id=view.run_id,
        created=view.created,
        metadata=_metadata(reader, entity, as_of),
        as_of=as_of,
    )


def history(reader: Reader, entity_id: str, key: str) -> models.History:
    """Every value ``key`` of an entity (by id) ever had, oldest first."""
    entity = as_uuid(entity_id)
    found = browse.registration(reader, entity.bytes)
    if found is None:
        raise ReferenceNotFound(f"no entity with id {entity}")
    entries = [
        models.HistoryEntry(e.position, e.event_id, e.logged_at, e.value, e.component)
        for e in reader.history(entity.bytes, key)
    ]
    return models.History(entity=entity, kind=found.kind, key=key, entries=entries)


def summaries(reader: Reader, rows: list[browse.RunRow]) -> list[models.RunSummary]:
    metrics = browse.run_metrics(reader, [r.id.bytes for r in rows])
    return [
        models.RunSummary(
            id=r.id,
            name=r.name,
            pipeline_name=r.pipeline_name,
            status=r.status,
            created=r.created,
            finished=r.finished,
            error=r.error,
            position=r.position,
            metrics=metrics[r.id.bytes],
        )
        for r in rows
    ]


def json_metadata(entity: S) -> S:
    """``entity`` with every metadata value (its steps' and history's too) in the JSON form."""
    entries = getattr(entity, "entries", None)
    if entries is not None:
        return msgspec.structs.replace(
            entity, entries=[msgspec.structs.replace(e, value=json_form(e.value)) for e in entries]
        )
    changes: dict[str, Any] = {"metadata": metadata_json_form(getattr(entity, "metadata"))}  # noqa: B009 - S is any entity model
    steps = getattr(entity, "steps", None)
    if steps is not None:
        changes["steps"] = [json_metadata(s) for s in steps]
    return msgspec.structs.replace(entity, **changes)


def split_refs(values: list[str]) -> list[str]:
    """Run references, repeated or comma-separated; at most :data:`MAX_COMPARED`."""
    refs = [r.strip() for v in values for r in v.split(",") if r.strip()]
    if not refs:
        raise ValueError("runs: name at least one run")
    if len(refs) > MAX_COMPARED:
        raise ValueError(f"compare takes at most {MAX_COMPARED} runs at once, got {len(refs)}")
    return refs


def load_comparison(
    reader: Reader, runs: list[str], baseline: str | None
) -> tuple[list[models.Run], int]:
    refs = split_refs(runs)
    ids = [browse.run_ref(reader, r) for r in refs]
    found = [run(reader, str(uuid.UUID(bytes=i))) for i in ids]
    index = 0
    if baseline:
        base = browse.run_ref(reader, baseline)
        if base not in ids:
            raise ValueError(f"baseline {baseline!r} is not one of the compared runs")
        index = ids.index(base)
    return found, index


def comparison(
    reader: Reader, runs: list[models.Run], baseline: int, *, json: bool
) -> models.Comparison:
    keys = compare([r.metadata for r in runs], baseline)
    metrics = browse.run_metrics(reader, [r.id.bytes for r in runs])
    summaries = [
        models.RunSummary(
            id=r.id,
            name=r.name,
            pipeline_name=r.pipeline_name,
            status=r.status,
            created=r.created,
            finished=r.finished,
            error=r.error,
            position=0,
            metrics=metrics[r.id.bytes],
        )
        for r in runs
    ]
    return models.Comparison(
        runs=summaries,
        baseline=runs[baseline].id,
        keys=[
            models.ComparedKey(
                key=k.key,
                values=[json_form(v) for v in k.values] if json else k.values,
                present=k.present,
                differs=k.differs,
                numeric=k.numeric,
            )
            for k in keys
        ],
    )
