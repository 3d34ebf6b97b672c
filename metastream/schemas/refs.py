"""References from an event to the entity it is about.

A ``MetadataLogged`` event names its target exactly as ``log_metadata`` was
called: by id, or by name (runs also by id or name prefix). The projections
resolve references against the entity registry; see
``metastream.projections.resolve``.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal, TypeAlias

import msgspec

EntityKind: TypeAlias = Literal["pipeline_run", "step_run", "artifact_version", "model_version"]
ENTITY_KINDS: Final[tuple[EntityKind, ...]] = (
    "pipeline_run",
    "step_run",
    "artifact_version",
    "model_version",
)


class ById(msgspec.Struct, frozen=True, gc=False, tag="id"):
    """An entity of ``kind`` by its id."""

    kind: EntityKind
    id: uuid.UUID

    def key(self) -> bytes:
        return self.id.bytes

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.id}"


class RunByName(msgspec.Struct, frozen=True, gc=False, tag="run"):
    """A pipeline run by id, exact name, or unique id/name prefix (in that order)."""

    name_id_or_prefix: str

    def key(self) -> bytes:
        return b"r\x00" + self.name_id_or_prefix.encode()

    def describe(self) -> str:
        return f"pipeline run {self.name_id_or_prefix!r}"


class StepByName(msgspec.Struct, frozen=True, gc=False, tag="step"):
    """The step called ``step_name`` in a run given by id, name or prefix."""

    run: str
    step_name: str

    def key(self) -> bytes:
        return b"s\x00" + self.run.encode() + b"\x00" + self.step_name.encode()

    def describe(self) -> str:
        return f"step {self.step_name!r} of pipeline run {self.run!r}"


class ArtifactByName(msgspec.Struct, frozen=True, gc=False, tag="artifact"):
    """An artifact version by artifact name and version."""

    name: str
    version: str

    def key(self) -> bytes:
        return b"a\x00" + self.name.encode() + b"\x00" + self.version.encode()

    def describe(self) -> str:
        return f"artifact {self.name!r} version {self.version!r}"


class ModelByName(msgspec.Struct, frozen=True, gc=False, tag="model"):
    """A model version by model name and version."""

    name: str
    version: str

    def key(self) -> bytes:
        return b"m\x00" + self.name.encode() + b"\x00" + self.version.encode()

    def describe(self) -> str:
        return f"model {self.name!r} version {self.version!r}"


Target: TypeAlias = ById | RunByName | StepByName | ArtifactByName | ModelByName
"""Where a ``MetadataLogged`` event's metadata goes."""
