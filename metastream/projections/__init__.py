"""Views built from the event log: the registry, latest values, history, the projector."""

from metastream.projections.base import Projection
from metastream.projections.latest import LatestProjection
from metastream.projections.projector import Projector, Quarantined, default_projections
from metastream.projections.registry import RegistryProjection
from metastream.projections.resolve import (
    NOW,
    Rejected,
    Resolution,
    Resolved,
    Waiting,
    resolve,
    run_async,
    run_sync,
)
from metastream.projections.store import Progress, Store

__all__ = [
    "NOW",
    "LatestProjection",
    "Progress",
    "Projection",
    "Projector",
    "Quarantined",
    "RegistryProjection",
    "Rejected",
    "Resolution",
    "Resolved",
    "Store",
    "Waiting",
    "default_projections",
    "resolve",
    "run_async",
    "run_sync",
]
