"""Read-only queries over the views: entities, metadata, history, "as of"."""

from metastream.query.reader import Reader
from metastream.query.views import (
    ArtifactVersionView,
    HistoryEntry,
    ModelVersionView,
    RunView,
    SetAside,
    Steps,
    StepView,
)

__all__ = [
    "ArtifactVersionView",
    "HistoryEntry",
    "ModelVersionView",
    "Reader",
    "RunView",
    "SetAside",
    "StepView",
    "Steps",
]

from metastream.query.client import Client

__all__ += ["Client"]
