"""What queries return: read-only snapshots of entities with typed metadata."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar


def utc(ts: float | None) -> datetime.datetime | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.UTC)


@dataclass(frozen=True, slots=True)
class StepView:
    id: uuid.UUID
    name: str
    run_id: uuid.UUID
    status: str | None
    created: datetime.datetime | None
    finished: datetime.datetime | None
    error: str | None
    run_metadata: dict[str, Any] = field(repr=False)


class Steps(Mapping[str, StepView]):
    """A run's steps by name; an unknown name raises a ``KeyError`` that lists the steps."""

    def __init__(self, run_name: str, steps: dict[str, StepView]) -> None:
        self._run_name = run_name
        self._steps = steps

    def __getitem__(self, name: str) -> StepView:
        try:
            return self._steps[name]
        except KeyError:
            known = ", ".join(sorted(self._steps)) or "none"
            raise KeyError(
                f"pipeline run {self._run_name!r} has no step {name!r} (its steps: {known})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"Steps({list(self._steps)})"


@dataclass(frozen=True, slots=True)
class RunView:
    id: uuid.UUID
    name: str
    pipeline_name: str | None
    status: str | None
    created: datetime.datetime | None
    finished: datetime.datetime | None
    error: str | None
    steps: Steps = field(repr=False)
    run_metadata: dict[str, Any] = field(repr=False)
    """The run's own keys, plus ``step_name::key`` for each step's keys (unless rollups are off)."""


@dataclass(frozen=True, slots=True)
class ArtifactVersionView:
    id: uuid.UUID
    name: str
    version: str
    run_id: uuid.UUID | None
    step_id: uuid.UUID | None
    uri: str | None
    created: datetime.datetime | None
    run_metadata: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ModelVersionView:
    id: uuid.UUID
    name: str
    version: str
    run_id: uuid.UUID | None
    created: datetime.datetime | None
    run_metadata: dict[str, Any] = field(repr=False)


View = TypeVar("View", StepView, RunView, ArtifactVersionView, ModelVersionView)


def view_of(view: type[View], record: Any, run_metadata: dict[str, Any], **given: Any) -> View:
    """A ``view`` with ``run_metadata``, ``given``, and ``record``'s attributes of the same
    names for its other fields (a registry member, an answer of the HTTP API)."""
    copied = {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(view)
        if f.name != "run_metadata" and f.name not in given
    }
    return view(**copied, **given, run_metadata=run_metadata)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One value logged for a key, with where and when."""

    position: int
    event_id: uuid.UUID
    logged_at: datetime.datetime
    value: Any
    component: str | None


@dataclass(frozen=True, slots=True)
class SetAside:
    """A ``MetadataLogged`` event not applied: waiting for its entity, or rejected."""

    position: int
    event_id: uuid.UUID
    target: str
    reason: str
    rejected: bool
    candidates: list[str]
