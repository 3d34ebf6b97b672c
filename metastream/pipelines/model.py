"""``Model``: the model version a step or pipeline works on (for ``infer_model=True``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from metastream.schemas import model_version_id_for, new_uuid


@dataclass(frozen=True)
class Model:
    """A model and, optionally, a version of it.

    A named version (``Model("fraud", "1.0")``) has the same id wherever it is
    used, so every run that names it adds to the same model version. Without
    a version, each run creates the next numbered version ("1", "2", ...).
    """

    name: str
    version: str | None = None
    description: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Model needs a non-empty name")
        if self.version is not None:  # the reference also accepts numbers
            object.__setattr__(self, "version", str(self.version))

    def version_id(self) -> uuid.UUID:
        """The id of this named version; a new one for an unnamed version."""
        if self.version is None:
            return new_uuid()
        return model_version_id_for(self.name, self.version)
