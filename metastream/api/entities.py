"""Entities as the API and the pages show them, read through ``metastream.query``.

Each function returns an API model whose metadata holds the Python values
(a ``Uri`` is still a ``Uri``): the pages render those, and the API turns
them into the JSON form with :func:`json_metadata`. An entity "as of" a
point is read by ``metastream.query.as_of``, as the CLI's ``--as-of`` reads it.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, TypeVar

import msgspec

from metastream.api import models
from metastream.api.readers import as_of_seconds
from metastream.errors import ReferenceNotFound
from metastream.query import Reader, browse
from metastream.query.as_of import run_as_of, step_as_of, version_as_of
from metastream.query.compare import MAX_COMPARED, compare
from metastream.schemas import as_uuid
from metastream.schemas.jsonform import json_form, metadata_json_form

S = TypeVar("S", bound=msgspec.Struct)


def _member(m: browse.Member) -> models.Member:
    return models.Member(m.id, m.kind, m.name, m.version, m.status, m.created)


M = TypeVar("M", models.Step, models.Run, models.ArtifactVersion, models.ModelVersion)


def _model(model: type[M], view: Any, **given: Any) -> M:
    """The API model of a query view: the view's fields, ``metadata`` its ``run_metadata``."""
    fields = {
        f.name: getattr(view, f.name) for f in dataclasses.fields(view) if f.name not in given
    }
    fields["metadata"] = fields.pop("run_metadata")
    return model(**fields, **given)


def _point(as_of: models.AsOf | None) -> dict[str, Any]:
    """``as_of`` as the ``position``/``time`` arguments of ``metastream.query.as_of``."""
    if as_of is None:
        return {}
    return {"position": as_of.position, "time": as_of_seconds(as_of)}


def run(
    reader: Reader, ref: str, *, as_of: models.AsOf | None = None, rollups: bool = True
) -> models.Run:
    """A run by id, name or unique prefix, with steps, artifacts and models."""
    run_id = browse.run_ref(reader, ref)
    point = _point(as_of)
    if as_of is None:
        view = reader.run_by_id(run_id, rollups=rollups)
    else:
        view = run_as_of(reader, run_id, rollups=rollups, **point)
    return _model(
        models.Run,
        view,
        steps=[_model(models.Step, s) for s in view.steps.values()],
        artifacts=[_member(m) for m in browse.members(reader, run_id, "artifact_version", **point)],
        models=[_member(m) for m in browse.members(reader, run_id, "model_version", **point)],
        as_of=as_of,
    )


def step(
    reader: Reader, step_ref: str, run_ref: str | None = None, *, as_of: models.AsOf | None = None
) -> models.Step:
    """A step run by id, or by name within a run."""
    step_id = reader.step_id(step_ref, run_ref)
    if as_of is None:
        view = reader.step(uuid.UUID(bytes=step_id))
    else:
        view = step_as_of(reader, step_id, **_point(as_of))
    return _model(models.Step, view, as_of=as_of)


def artifact_version(
    reader: Reader, ref: str, version: str | None = None, *, as_of: models.AsOf | None = None
) -> models.ArtifactVersion:
    """An artifact version by name and version (the latest when none), or by id."""
    view = reader.artifact_version(ref, version)
    if as_of is not None:
        view = version_as_of(reader, view, **_point(as_of))
    return _model(models.ArtifactVersion, view, as_of=as_of)


def model_version(
    reader: Reader, ref: str, version: str | None = None, *, as_of: models.AsOf | None = None
) -> models.ModelVersion:
    """A model version by name and version (the latest when none), or by id."""
    view = reader.model_version(ref, version)
    if as_of is not None:
        view = version_as_of(reader, view, **_point(as_of))
    return _model(models.ModelVersion, view, as_of=as_of)


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


def _summary(
    run: browse.RunRow | models.Run, metrics: dict[str, Any], position: int
) -> models.RunSummary:
    return models.RunSummary(
        id=run.id,
        name=run.name,
        pipeline_name=run.pipeline_name,
        status=run.status,
        created=run.created,
        finished=run.finished,
        error=run.error,
        position=position,
        metrics=metrics,
    )


def summaries(reader: Reader, rows: list[browse.RunRow]) -> list[models.RunSummary]:
    metrics = browse.run_metrics(reader, [r.id.bytes for r in rows])
    return [_summary(r, metrics[r.id.bytes], r.position) for r in rows]


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
    return models.Comparison(
        runs=[_summary(r, metrics[r.id.bytes], 0) for r in runs],
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
