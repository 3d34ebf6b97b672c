"""Entities "as of" a log position or a time: the registry as well as the metadata.

``Reader.as_of`` gives an entity's metadata at a point; this module gives
the entity itself at that point: a run with the status it had then, the
steps and artifact versions registered by then (each with its metadata
then), or ``ReferenceNotFound`` saying it did not exist yet. The rules are
those of ``metastream.query.browse`` (which the HTTP API uses too): an
entity exists from the position (or producer time) of the event that
registered it; a status set by a finish event timed after the point reads
``running``.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import TypeVar

from metastream.errors import ReferenceNotFound
from metastream.query import browse
from metastream.query.reader import Reader
from metastream.query.views import (
    ArtifactVersionView,
    ModelVersionView,
    RunView,
    Steps,
    StepView,
    view_of,
)


def describe(position: int | None, time: float | None) -> str:
    """The point as a user wrote it: ``position 6`` or an ISO 8601 time."""
    parts = []
    if position is not None:
        parts.append(f"position {position}")
    if time is not None:
        parts.append(datetime.datetime.fromtimestamp(time, datetime.UTC).isoformat())
    return " and ".join(parts)


def require_existed(
    reader: Reader,
    entity: bytes,
    what: str,
    *,
    position: int | None = None,
    time: float | None = None,
) -> None:
    """Raise ``ReferenceNotFound`` if ``entity`` was registered after the point."""
    found = browse.registration(reader, entity)
    if found is None:
        return
    if position is not None and found.position is not None and found.position > position:
        raise ReferenceNotFound(
            f"{what} did not exist yet as of {describe(position, time)} "
            f"(it was registered at position {found.position})"
        )
    if time is not None and found.created is not None and found.created > time:
        registered = datetime.datetime.fromtimestamp(found.created, datetime.UTC).isoformat()
        raise ReferenceNotFound(
            f"{what} did not exist yet as of {describe(position, time)} "
            f"(it was registered at {registered})"
        )


V = TypeVar("V", bound=RunView | StepView)


def _status_then(reader: Reader, view: V, *, position: int | None, time: float | None) -> V:
    """``view`` with the status it had at the point: ``running`` if it finished after it."""
    cut = browse.cut_time(reader, position, time)
    if cut is not None and view.finished is not None and view.finished.timestamp() > cut:
        return dataclasses.replace(view, status="running", finished=None, error=None)
    return view


def run_as_of(
    reader: Reader,
    run_id: bytes,
    *,
    position: int | None = None,
    time: float | None = None,
    rollups: bool = True,
) -> RunView:
    """The run as it was: its status, its steps then (with their metadata then), and its
    metadata then (with ``step::key`` rollups of those steps unless ``rollups`` is false)."""
    view = reader.run_by_id(run_id, rollups=False, steps=False)  # the steps are read as of below
    require_existed(reader, run_id, f"pipeline run {view.name!r}", position=position, time=time)
    metadata = reader.as_of(run_id, position=position, time=time)
    steps: dict[str, StepView] = {}
    for m in browse.members(reader, run_id, "step_run", position=position, time=time):
        step_metadata = reader.as_of(m.id.bytes, position=position, time=time)
        steps[m.name] = view_of(StepView, m, step_metadata, run_id=view.id)
        if rollups:
            for key, value in step_metadata.items():
                metadata[f"{m.name}::{key}"] = value
    then = dataclasses.replace(view, steps=Steps(view.name, steps), run_metadata=metadata)
    return _status_then(reader, then, position=position, time=time)


def step_as_of(
    reader: Reader, step_id: bytes, *, position: int | None = None, time: float | None = None
) -> StepView:
    """The step run as it was: its status and its metadata then."""
    view = reader.step(uuid.UUID(bytes=step_id))
    require_existed(reader, step_id, f"step {view.name!r}", position=position, time=time)
    then = dataclasses.replace(
        view, run_metadata=reader.as_of(step_id, position=position, time=time)
    )
    return _status_then(reader, then, position=position, time=time)


Version = TypeVar("Version", bound=ArtifactVersionView | ModelVersionView)


def version_as_of(
    reader: Reader, view: Version, *, position: int | None = None, time: float | None = None
) -> Version:
    """The artifact or model version as it was: its metadata then (it has no status)."""
    kind = "artifact" if isinstance(view, ArtifactVersionView) else "model"
    entity = view.id.bytes
    what = f"{kind} {view.name!r} version {view.version!r}"
    require_existed(reader, entity, what, position=position, time=time)
    return dataclasses.replace(
        view, run_metadata=reader.as_of(entity, position=position, time=time)
    )


def run_artifacts_as_of(
    reader: Reader, run_id: bytes, *, position: int | None = None, time: float | None = None
) -> list[ArtifactVersionView]:
    """The artifact versions the run had produced by then, each with its metadata then."""
    if position is None and time is None:
        return reader.run_artifacts(run_id)
    out = []
    for m in browse.members(reader, run_id, "artifact_version", position=position, time=time):
        view = reader.artifact_version(m.id)
        metadata = reader.as_of(m.id.bytes, position=position, time=time)
        out.append(dataclasses.replace(view, run_metadata=metadata))
    return out


__all__ = [
    "describe",
    "require_existed",
    "run_artifacts_as_of",
    "run_as_of",
    "step_as_of",
    "version_as_of",
]
